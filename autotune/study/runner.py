"""The study loop: Optuna ask/tell over an executor, then validation and a verdict.

All state that matters lives in the Optuna storage (trial params, values, raw pairs,
preflight, validation, decision as user attributes), so a study can be resumed by name
from any process and reports can be rebuilt from storage alone.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import optuna

from autotune.core.catalog import Knob
from autotune.core.errors import AutotuneError, BadInputError, MeasurementError
from autotune.executors.base import Executor, Job, JobResult
from autotune.study import protocol, selection
from autotune.study.config import StudyConfig
from autotune.study.progress import StudyProgress
from autotune.study.space import suggest
from autotune.study.stats import bootstrap_effect
from autotune.study.storage import open_storage
from autotune.study.worker import Pair

ATTR = "autotune."
MAX_CONSECUTIVE_FAILURES = 3
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _directions(config: StudyConfig) -> list[Literal["minimize", "maximize"]]:
    table: dict[str, list[Literal["minimize", "maximize"]]] = {"throughput": ["maximize"], "p99": ["minimize"],
            "both": ["maximize", "minimize"]}
    return table[config.objective]


def open_study(config: StudyConfig) -> optuna.Study:
    """Create or resume the study; refuse to resume one with other objectives."""
    sampler = optuna.samplers.TPESampler(seed=config.seed, constant_liar=True, n_startup_trials=4)
    storage = open_storage(config.storage)
    try:
        study = optuna.create_study(study_name=config.name(), storage=storage, sampler=sampler,
                                    directions=_directions(config), load_if_exists=True)
    except ValueError as e:
        raise BadInputError(f"study {config.name()!r}: {e}; pick another --study name") from e
    stored = [d.name.lower() for d in study.directions]
    if stored != _directions(config):
        raise BadInputError(f"study {config.name()!r} was created with objective directions {stored}; "
                            f"resume it with its own --objective or choose another --study name")
    return study


class StudyRunner:
    """Runs one session of a study on an executor's targets."""

    def __init__(self, *, config: StudyConfig, executor: Executor, knobs: list[Knob],
                 left_out: list[tuple[str, str]], progress: StudyProgress | None = None) -> None:
        config.validate()
        if not knobs:
            why = f"; e.g. {left_out[0][0]}: {left_out[0][1]}" if left_out else ""
            raise BadInputError(f"no usable knobs on this target, nothing to tune{why} "
                                "(see 'autotune knob list' for every reason)")
        self.config = config
        self.executor = executor
        self.knobs = knobs
        self.left_out = left_out
        self.progress = progress
        self.repeats = config.repeats or 2  # replaced by the preflight's choice
        self.study = open_study(config)

    def _log(self, text: str) -> None:
        if self.progress:
            self.progress.log(text)

    def run(self) -> dict[str, Any]:
        """Preflight, search, validate, decide; returns the decision (also stored)."""
        self._store_context()
        self.executor.start()
        self._select()
        pre = self._preflight()
        if "widened_from" in pre:
            self._log(f"preflight: {pre['metric']} CV {pre['cv']:.1%}, pair noise "
                      f"{pre['pair_noise']:.1%} -> {pre['repeats_needed']} repeat(s) needed for the "
                      f"default {pre['widened_from']:.0%} effect; using --max-repeats "
                      f"{pre['repeats']}, which resolve {pre['min_effect']:.0%} (give --repeats or "
                      "--min-effect to insist)")
        else:
            self._log(f"preflight: {pre['metric']} CV {pre['cv']:.1%}, pair noise "
                      f"{pre['pair_noise']:.1%} -> {pre['repeats_needed']} repeat(s) needed for a "
                      f"{pre['min_effect']:.0%} effect, {pre['repeats']} used")
        self.repeats = int(pre["repeats"])
        self._search()
        validations = self._validate()
        decision = protocol.decide(validations, self.config)
        self.study.set_user_attr(ATTR + "validation", validations)
        self.study.set_user_attr(ATTR + "decision", decision)
        return decision

    def _store_context(self) -> None:
        s = self.study
        s.set_user_attr(ATTR + "config", {**self.config.__dict__, "knobs": list(self.config.knobs)})
        s.set_user_attr(ATTR + "knobs", [k.model_dump(mode="json") for k in self.knobs])
        s.set_user_attr(ATTR + "left_out", [list(x) for x in self.left_out])
        s.set_user_attr(ATTR + "executor", self.executor.describe())

    def _run_one(self, job: Job) -> JobResult:
        result = next(iter(self.executor.run([job])))
        if result.error:
            raise MeasurementError(result.error)
        return result

    def _select(self) -> None:
        """Narrow the SIE knobs to those the workload runs (see ``autotune.study.selection``).

        A resumed study keeps its stored selection while its candidates are the same: its
        trials already span that space. Other candidates (a re-analysed catalog) count again.
        """
        named = set(self.config.knobs)
        candidates = selection.countable(self.knobs, named)
        if not self.config.select or not candidates:
            return
        stored = self.study.user_attrs.get(ATTR + "selection")
        digest = selection.digest(candidates)
        if stored is not None and stored.get("candidates") == digest:
            chosen = selection.from_stored(self.knobs, stored)
        else:
            if stored is not None:
                self._log("the candidate knobs differ from those this study selected from "
                          "(another catalog or kernel): counting again")
            chosen = self._count_and_check(named)
            chosen.candidates = digest
            self.study.set_user_attr(ATTR + "selection", chosen.to_json())
        if self.progress:
            self.progress.console.print(selection.table(chosen, self.config.max_knobs))
        if not chosen.kept:
            raise BadInputError("no candidate knob was hit by the workload and passed its check at "
                                "the default value, nothing to tune: name knobs with --knob, or "
                                "pass --no-select")
        self.knobs = chosen.kept
        self.left_out = [*self.left_out, *chosen.left_out]
        self.study.set_user_attr(ATTR + "knobs", [k.model_dump(mode="json") for k in self.knobs])
        self.study.set_user_attr(ATTR + "left_out", [list(x) for x in self.left_out])

    def _count_and_check(self, named: set[str]) -> selection.Selection:
        """Count hits during one run, rank, then load the chosen knobs at their defaults for
        one more run and drop those that fail to load or whose sites fail the self-check."""
        if self.progress:
            self.progress.phase("counting knob hits")
        started = time.monotonic()
        counts = self._run_one(Job(kind="count", tag=0)).counts
        assert counts is not None
        chosen = selection.select(self.knobs, counts, named=named, max_knobs=self.config.max_knobs)
        counted = time.monotonic()
        if self.progress:
            self.progress.phase("checking the chosen knobs at their defaults")
        checked = self._run_one(Job(kind="verify", tag=0, params=selection.to_verify(chosen)))
        selection.drop(chosen, checked.rejected)
        chosen.seconds, chosen.check_seconds = counted - started, time.monotonic() - counted
        return chosen

    def _preflight(self) -> dict[str, Any]:
        if self.progress:
            self.progress.phase("preflight")
        result = self._run_one(Job(kind="baseline", tag=0, repeats=self.config.preflight_runs))
        report = protocol.preflight(result.runs, self.config)
        history: list[dict[str, Any]] = self.study.user_attrs.get(ATTR + "preflight", [])
        self.study.set_user_attr(ATTR + "preflight", [*history, {**report, "runs": result.runs}])
        return report

    def _search(self) -> None:
        deadline = time.monotonic() + self.config.timeout if self.config.timeout else None
        done, failures = 0, 0
        if self.progress:
            self.progress.phase("search")
        while done < self.config.trials and (deadline is None or time.monotonic() < deadline):
            batch = min(self.executor.concurrency, self.config.trials - done)
            asked = {}
            for _ in range(batch):
                trial = self.study.ask()
                asked[trial.number] = (trial, suggest(trial, self.knobs))
            jobs = [Job(kind="pairs", tag=n, params=p, repeats=self.repeats)
                    for n, (_, p) in asked.items()]
            try:
                for result in self.executor.run(jobs):
                    trial, _ = asked.pop(result.job.tag)
                    failures = 0 if self._tell(trial, result) else failures + 1
                    done += 1
                    if self.progress:
                        self.progress.advance(self._best_text())
            finally:
                for trial, _ in asked.values():
                    trial.set_user_attr(ATTR + "fail_reason", "interrupted")
                    self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if failures >= MAX_CONSECUTIVE_FAILURES:
                raise AutotuneError(f"{failures} trials in a row failed (last: see 'autotune report'); "
                                    "stopping: check the workload and the target's health")

    def _tell(self, trial: optuna.Trial, result: JobResult) -> bool:
        trial.set_user_attr(ATTR + "worker", result.worker)
        if result.error:
            trial.set_user_attr(ATTR + "fail_reason", result.error)
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self._log(f"trial {trial.number} failed: {result.error}")
            return False
        trial.set_user_attr(ATTR + "pairs", [p.to_json() for p in result.pairs])
        for key, value in protocol.constraint(result.pairs, self.config).items():
            trial.set_constraint(key, value)
        self.study.tell(trial, protocol.trial_values(result.pairs, self.config))
        return True

    def _best_text(self) -> str:
        complete = [t for t in self.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            return ""
        metric = self.config.primary()
        higher = protocol.BETTER_HIGHER[metric]
        best = (max if higher else min)(complete, key=lambda t: t.values[0])
        eff = bootstrap_effect([Pair.from_json(p).ratio(metric) for p in best.user_attrs[ATTR + "pairs"]])
        return (f"best #{best.number}: {metric} {eff.effect:+.1%} "
                f"[{eff.low:+.1%}, {eff.high:+.1%}] (search CI, unvalidated)")

    @staticmethod
    def _in_space(t: optuna.trial.FrozenTrial, knobs: dict[str, Knob]) -> bool:
        """Whether this session can enact ``t``: every knob it set is searched now, at a value
        today's domain allows. A resumed study may hold trials of an older knob set (another
        catalog, another selection); validating those would apply knobs nobody chose."""
        return all(name in knobs and knobs[name].domain.allows_value(int(v))
                   for name, v in t.params.items())

    def candidates(self) -> list[optuna.trial.FrozenTrial]:
        """Top-K feasible trials by the primary objective (Pareto front first for 'both'),
        among those this session's knob set can enact."""
        knobs = {k.name: k for k in self.knobs}
        complete = [t for t in self.study.trials if t.state == optuna.trial.TrialState.COMPLETE
                    and all(c <= 0 for c in t.constraints.values()) and self._in_space(t, knobs)]
        pool = self.study.best_trials if self.config.objective == "both" else complete
        pool = [t for t in pool if t in complete] or complete
        higher = self.config.objective != "p99"
        ranked = sorted(pool, key=lambda t: t.values[0], reverse=higher)
        return ranked[: self.config.top_k]

    def _validate(self) -> list[dict[str, Any]]:
        if self.progress:
            self.progress.phase("validate")
        out = []
        for t in self.candidates():
            params = {k: int(v) for k, v in t.params.items()}
            try:
                result = self._run_one(Job(kind="pairs", tag=0, params=params,
                                           repeats=self.config.validate_blocks))
            except MeasurementError as e:
                self._log(f"validation of trial {t.number} failed: {e}")
                continue
            eff = protocol.effects(result.pairs, seed=t.number)
            out.append({"trial": t.number, "params": params,
                        "effects": {m: e.as_dict() for m, e in eff.items()},
                        "pairs": [p.to_json() for p in result.pairs]})
        return out
