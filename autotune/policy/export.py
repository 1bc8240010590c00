"""Build a Policy from a finished study's stored decision (never from best_trial as observed)."""

from __future__ import annotations

import optuna

from autotune.core.errors import BadInputError
from autotune.policy.schema import Evidence, MetricEvidence, Policy, PolicyKernel, PolicyKnob
from autotune.study.runner import ATTR
from autotune.study.storage import storage_url


def policy_from_study(study: optuna.Study, storage: str | None) -> Policy:
    attrs = study.user_attrs
    decision = attrs.get(ATTR + "decision")
    if decision is None:
        raise BadInputError(f"study {study.study_name!r} has no verdict yet: let 'autotune run "
                            f"--study {study.study_name}' finish its validation first")
    config = attrs[ATTR + "config"]
    knobs = {k["name"]: k for k in attrs[ATTR + "knobs"]}
    targets = attrs[ATTR + "executor"]["targets"]
    build_ids = {t["kernel_build_id"] for t in targets}
    if len(build_ids) != 1:
        raise BadInputError(f"study {study.study_name!r} ran on several kernel builds {sorted(build_ids)}; "
                            "a policy is for one build: rerun on one target kind")
    effects = decision.get("effects") or {}
    if decision["verdict"] == "no-change":
        validations = attrs.get(ATTR + "validation") or []
        effects = validations[0]["effects"] if validations else {}
    preflights = attrs.get(ATTR + "preflight") or [{}]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return Policy(
        workload=config["workload"],
        target=targets[0]["name"],
        kernel=PolicyKernel(release=targets[0]["kernel_release"], build_id=build_ids.pop()),
        knobs=[PolicyKnob(name=n, backend=knobs[n]["backend"], value=int(v))
               for n, v in sorted(decision["params"].items())],
        evidence=Evidence(
            study=study.study_name, storage=storage_url(storage), verdict=decision["verdict"],
            summary=decision["summary"], objective=config["objective"], trials=len(complete),
            validated_trial=decision.get("trial"),
            metrics={m: MetricEvidence(**e) for m, e in effects.items()},
            preflight_cv=preflights[-1].get("cv"),
            provenance={"executor": attrs[ATTR + "executor"], "config": config,
                        "left_out": attrs.get(ATTR + "left_out", []),
                        "selection": attrs.get(ATTR + "selection")},
        ),
    )
