"""One night: for each due definition, re-check the best policy, run a fresh study, export.

Each night gets its own study (``NAME-YYYYmmdd-HHMM``) so trials measured on yesterday's
kernel and load never mix with tonight's. The best policy is replaced by tonight's when
tonight's verdict improved, and dropped for the default when re-validation found it now
regresses, so a harmful policy is never recommended twice.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from autotune.core.errors import AutotuneError
from autotune.policy.export import policy_from_study
from autotune.policy.schema import Policy, load_policy, write_policy
from autotune.study.session import run_study
from autotune.study.storage import load_study
from studies import schedule
from studies.definition import StudyDefinition
from studies.revalidate import DriftCheck, revalidate

BEST = "best.toml"


@dataclass
class NightResult:
    name: str
    study: str
    drift: DriftCheck
    verdict: str
    policy_path: Path | None = None
    report: Path | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "study": self.study, "drift": self.drift.to_json(),
                "verdict": self.verdict, "error": self.error,
                "policy": str(self.policy_path) if self.policy_path else None,
                "report": str(self.report) if self.report else None}


def best_policy(name: str) -> Policy | None:
    path = schedule.study_dir(name) / BEST
    return load_policy(path) if path.exists() else None


def run_definition(definition: StudyDefinition, console: Console, *,
                   report: bool = True) -> NightResult:
    """Re-validate, study, export and report one definition; failures are recorded, not raised."""
    started = schedule.now()
    study_name = f"{definition.name}-{started:%Y%m%d-%H%M%S}"
    config = definition.config(study_name)
    schedule.update_state(definition.name, last_started=started.isoformat(), last_study=study_name)
    previous = best_policy(definition.name)
    console.print(f"[bold]{definition.name}[/bold]: re-validating the previous best policy")
    drift = revalidate(previous, config, pairs=definition.drift.pairs,
                       tolerance=definition.drift.tolerance, say=console.print)
    style = "red" if drift.flagged else "green"
    console.print(f"[{style}]{drift.status}[/{style}]: {drift.summary}")
    result = NightResult(name=definition.name, study=study_name, drift=drift, verdict="failed")
    try:
        run_study(config, console)
        study = load_study(study_name, definition.storage)
        study.set_user_attr("autotune.drift", drift.to_json())
        policy = policy_from_study(study, definition.storage)
        result.verdict = policy.evidence.verdict
        result.policy_path = schedule.study_dir(definition.name) / f"{study_name}.toml"
        write_policy(policy, result.policy_path)
        if policy.evidence.verdict == "improved" or drift.status == "regression":
            shutil.copyfile(result.policy_path, schedule.study_dir(definition.name) / BEST)
        if report:
            from studies.report import build_report

            result.report = build_report(study, schedule.study_dir(definition.name) / study_name)
    except AutotuneError as e:
        result.error = str(e)
        console.print(f"[red]{definition.name}: study failed: {e}[/red]")
    finished = schedule.now().isoformat()
    schedule.update_state(definition.name, last_finished=finished, last_verdict=result.verdict,
                          last_drift=drift.status, last_error=result.error)
    schedule.append_history(definition.name, {"finished": finished, **result.to_json(),
                                              "drift": drift.to_json() | {"pairs": len(drift.pairs)}})
    return result


def run_due(definitions: list[StudyDefinition], console: Console, *, force: bool = False,
            only: tuple[str, ...] = (), report: bool = True) -> list[NightResult]:
    """Run every due definition (all of them with ``force``), optionally only those named."""
    state = schedule.load_state()
    at = schedule.now()
    results = []
    for d in definitions:
        if only and d.name not in only:
            continue
        if not force and not schedule.is_due(d, state, at):
            console.print(f"{d.name}: not due until {schedule.next_due(d, state)}")
            continue
        results.append(run_definition(d, console, report=report))
    return results
