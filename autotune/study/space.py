"""Search space: knob domains -> Optuna distributions (log, discrete sets, flags)."""

from __future__ import annotations

import optuna

from autotune.core.catalog import Knob


def suggest(trial: optuna.Trial, knobs: list[Knob]) -> dict[str, int]:
    """Ask Optuna for one value per knob, honouring each domain's constraints."""
    params: dict[str, int] = {}
    for knob in knobs:
        d = knob.domain
        allowed = d.allowed_values()
        if allowed is not None:
            params[knob.name] = int(trial.suggest_categorical(knob.name, allowed))
        else:
            params[knob.name] = trial.suggest_int(knob.name, d.min, d.max, log=d.log)
    return params

