"""Measurement protocol decisions, on synthetic numbers with known answers."""

from __future__ import annotations

import math

import pytest

from autotune.core.errors import BadInputError, NoiseTooHighError
from autotune.study import protocol
from autotune.study.config import StudyConfig
from autotune.study.stats import bootstrap_effect, cv, outliers, pair_noise, repeats_needed
from autotune.study.worker import Pair


def run(thr: float, p99: float) -> dict[str, float]:
    return {"throughput": thr, "p99_ms": p99}


def pair(base: float, cand: float, p99b: float = 1.0, p99c: float = 1.0) -> Pair:
    return Pair(order="AB", baseline=run(base, p99b), candidate=run(cand, p99c))


def test_quiet_baseline_passes_preflight() -> None:
    runs = [run(100 + d, 1.0) for d in (0, 0.5, -0.4, 0.3, -0.2)]
    report = protocol.preflight(runs, StudyConfig(repeats=2, min_effect=0.05))
    assert report["repeats_needed"] == 1 and report["cv"] < 0.01


def test_noisy_baseline_is_refused_with_the_fix() -> None:
    runs = [run(v, 1.0) for v in (100, 140, 90, 150, 80)]
    with pytest.raises(NoiseTooHighError) as err:
        protocol.preflight(runs, StudyConfig(repeats=2, min_effect=0.05))
    msg = str(err.value)
    needed = repeats_needed(pair_noise([100, 140, 90, 150, 80]), 0.05)
    assert f"--repeats {needed}" in msg and "--min-effect" in msg


def test_repeats_needed_grows_with_noise_squared() -> None:
    assert repeats_needed(0.0, 0.05) == 1
    assert repeats_needed(0.04, 0.05) < repeats_needed(0.08, 0.05)
    assert repeats_needed(0.08, 0.05) == math.ceil((1.959964 * 0.08 / math.log1p(0.05)) ** 2)


def test_bootstrap_ci_contains_truth_and_excludes_zero_for_clear_effect() -> None:
    eff = bootstrap_effect([1.10, 1.12, 1.09, 1.11, 1.10, 1.13])
    assert eff.low < 0.11 < eff.high and eff.excludes_no_change()
    flat = bootstrap_effect([0.95, 1.06, 1.01, 0.97, 1.03])
    assert not flat.excludes_no_change()
    single = bootstrap_effect([1.2])
    assert single.low == -math.inf and not single.excludes_no_change()


def test_trial_values_and_constraints() -> None:
    pairs = [pair(100, 110, 1.0, 1.2), pair(100, 110, 1.0, 1.2)]
    cfg = StudyConfig(objective="throughput", max_regression=0.05)
    assert protocol.trial_values(pairs, cfg) == pytest.approx([1.10])
    assert protocol.constraint(pairs, cfg)["p99_regression"] == pytest.approx(0.15)
    both = StudyConfig(objective="both")
    assert protocol.trial_values(pairs, both) == pytest.approx([1.10, 1.2])
    assert protocol.constraint(pairs, both) == {}


def validation(trial: int, thr: tuple[float, float, float], p99: tuple[float, float, float]) -> dict:
    def e(t: tuple[float, float, float]) -> dict[str, float]:
        return {"effect": t[0], "ci_low": t[1], "ci_high": t[2], "n": 4}
    return {"trial": trial, "params": {"k": trial}, "effects": {"throughput": e(thr), "p99_ms": e(p99)}}


def test_decide_ships_only_a_ci_that_excludes_no_change() -> None:
    cfg = StudyConfig(objective="throughput", max_regression=0.05)
    vals = [validation(1, (0.08, -0.01, 0.15), (0.0, -0.1, 0.1)),
            validation(2, (0.04, 0.01, 0.07), (0.0, -0.1, 0.1)),
            validation(3, (0.20, 0.10, 0.30), (0.30, 0.2, 0.4))]
    d = protocol.decide(vals, cfg)
    assert d["verdict"] == "improved" and d["trial"] == 2
    assert any("trial 1" in r and "includes no change" in r for r in d["reasons"])
    assert any("trial 3" in r and "regresses" in r for r in d["reasons"])
    none = protocol.decide(vals[:1], cfg)
    assert none["verdict"] == "no-change" and none["params"] == {}


def test_decide_for_latency_wants_the_ci_below_zero() -> None:
    cfg = StudyConfig(objective="p99")
    d = protocol.decide([validation(4, (0.0, -0.02, 0.02), (-0.1, -0.15, -0.05))], cfg)
    assert d["verdict"] == "improved"


def test_noise_helpers() -> None:
    assert cv([1.0]) == 0.0 and cv([1.0, 1.0]) == 0.0
    assert outliers([1.0, 1.01, 0.99, 1.0, 5.0]) == [4]


@pytest.mark.parametrize("kwargs", [{"trials": 0}, {"repeats": 0}, {"min_effect": 1.5},
                                    {"objective": "speed"}, {"duration": 0.1}])
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(BadInputError):
        StudyConfig(**kwargs).validate()


def test_automatic_repeats_follow_the_noise_up_to_the_ceiling() -> None:
    values = [100, 104, 98, 103, 97]
    noise = pair_noise(values)
    runs = [run(v, 1.0) for v in values]
    auto = protocol.preflight(runs, StudyConfig(min_effect=0.05))
    assert auto["repeats"] == max(2, repeats_needed(noise, 0.05))
    with pytest.raises(NoiseTooHighError, match="--max-repeats 2"):
        protocol.preflight(runs, StudyConfig(min_effect=0.01, max_repeats=2))


def test_a_default_minimum_effect_widens_to_what_max_repeats_resolve_but_not_far() -> None:
    values = [100, 125, 90, 122, 88]  # pair noise 0.34: a 20% lab effect needs 14 repeats
    noise = pair_noise(values)
    runs = [run(v, 1.0) for v in values]
    assert repeats_needed(noise, 0.20) > 8
    report = protocol.preflight(runs, StudyConfig(target="lab"))
    assert report["repeats"] == 8 and report["widened_from"] == 0.20
    assert 0.20 < report["min_effect"] <= protocol.WIDEN_AT_MOST * 0.20
    assert repeats_needed(noise, report["min_effect"]) <= 8
    for insisted in ({"min_effect": 0.20}, {"repeats": 4}):  # asked for: refused as before
        with pytest.raises(NoiseTooHighError):
            protocol.preflight(runs, StudyConfig(target="lab", **insisted))
    with pytest.raises(NoiseTooHighError):  # far noisier than the default allows
        protocol.preflight([run(v, 1.0) for v in (100, 160, 70, 150, 60)], StudyConfig(target="lab"))


def test_lab_targets_default_to_a_larger_minimum_effect() -> None:
    assert StudyConfig(target="lab").effective_min_effect() > StudyConfig(target="host").effective_min_effect()
    assert StudyConfig(target="lab", min_effect=0.03).effective_min_effect() == 0.03


def test_small_samples_get_a_t_interval_not_their_range() -> None:
    two = bootstrap_effect([1.20, 1.30])
    assert two.low < 0 < two.high  # t with 1 d.f. is wide: two pairs prove nothing
    many = bootstrap_effect([1.20, 1.30] * 6)
    assert many.excludes_no_change()
