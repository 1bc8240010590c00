"""Study definitions, schedules and drift classification: pure logic over real files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autotune.core.errors import BadInputError
from autotune.study.stats import Effect
from studies import schedule
from studies.definition import DEFINITIONS_DIR, load_definition, load_definitions
from studies.revalidate import classify


def test_shipped_redis_definition_validates_and_maps_to_a_study_config() -> None:
    defs = load_definitions(DEFINITIONS_DIR)
    redis = next(d for d in defs if d.name == "nightly-redis")
    config = redis.config("nightly-redis-x")
    assert config.workload == "redis" and config.study_name == "nightly-redis-x"
    assert config.trials == redis.budget.trials and config.workers == redis.budget.workers
    config.validate()


@pytest.mark.parametrize(("text", "where"), [
    ("name = 'a'\n[budget]\ntrials = 0\n", "budget.trials"),
    ("name = 'a'\ntarget = 'moon'\n", "target"),
    ("name = 'a'\ncolour = 'red'\n", "colour"),
    ("name = 'a b'\n", "name"),
    ("name = 'a'\n[schedule]\nevery_hours = -1\n", "schedule.every_hours"),
])
def test_bad_definitions_are_refused_with_the_field_named(tmp_path: Path, text: str,
                                                            where: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BadInputError) as err:
        load_definition(path)
    message = str(err.value)
    assert where in message and str(path) in message and "\n" not in message


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    for f in ("a.toml", "b.toml"):
        (tmp_path / f).write_text("name = 'same'\n")
    with pytest.raises(BadInputError, match="same"):
        load_definitions(tmp_path)


def test_due_follows_every_hours_and_the_recorded_start(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text("name = 'd'\n[schedule]\nevery_hours = 6\n")
    d = load_definition(path)
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert schedule.is_due(d, {}, now)
    state = {"d": {"last_started": (now - timedelta(hours=5)).isoformat()}}
    assert not schedule.is_due(d, state, now)
    state = {"d": {"last_started": (now - timedelta(hours=5, minutes=55)).isoformat()}}
    assert schedule.is_due(d, state, now)  # timers fire a little early: slack


def test_state_survives_a_reload_and_merges_fields() -> None:
    schedule.update_state("x", last_started="2026-11-29T00:00:00+00:00")
    schedule.update_state("x", last_verdict="improved")
    assert schedule.load_state()["x"] == {"last_started": "2026-11-29T00:00:00+00:00",
                                          "last_verdict": "improved"}


@pytest.mark.parametrize(("fresh", "recorded", "status"), [
    (Effect(-0.20, -0.25, -0.15, 6), 0.10, "regression"),   # now worse than the default
    (Effect(0.01, -0.03, 0.05, 6), 0.30, "regression"),     # the promised gain is gone
    (Effect(0.40, 0.30, 0.50, 6), 0.10, "drift"),           # better than promised
    (Effect(0.09, 0.02, 0.16, 6), 0.10, "ok"),              # CI still covers the claim
    (Effect(0.02, 0.01, 0.03, 6), 0.05, "ok"),              # below the CI, within tolerance
])
def test_classify(fresh: Effect, recorded: float, status: str) -> None:
    got, summary = classify(fresh, recorded, "throughput", tolerance=0.05)
    assert got == status
    assert f"{fresh.effect:+.1%}" in summary


def test_classify_lower_is_better_for_p99() -> None:
    got, _ = classify(Effect(0.30, 0.20, 0.40, 6), -0.10, "p99_ms", tolerance=0.05)
    assert got == "regression"
    got, _ = classify(Effect(-0.40, -0.50, -0.30, 6), -0.10, "p99_ms", tolerance=0.05)
    assert got == "drift"
