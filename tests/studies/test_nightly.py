"""Two nightly runs on the host: real redis, real sysctl writes, real re-validation.

Night 1 tunes and exports. Between the nights a regression is injected: the best policy on
file now promises a +80% throughput gain that its knob value does not deliver on this
kernel (as when yesterday's bottleneck is gone). Night 2 must measure the policy again on
fresh interleaved pairs and flag it, with the effect and its CI, and stop recommending it.
Settings are tiny: these tests check the nightly plumbing and the drift rule, not tuning.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import optuna
import pytest

from autotune.policy.schema import MetricEvidence, PolicyKnob, load_policy, write_policy
from studies import schedule

pytestmark = [pytest.mark.root, pytest.mark.redis]

DEFINITION = """
name = "drift-redis"
workload = "redis"
target = "host"
knobs = ["net.core.netdev_budget"]
seed = 3
[workload_options]
clients = 20
[schedule]
every_hours = 24
[budget]
trials = 2
repeats = 2
duration = 1.0
min_effect = 0.95
preflight_runs = 5
top_k = 1
validate_blocks = 2
[drift]
pairs = 6
tolerance = 0.05
"""
CLAIM = 0.80


def nightly(defs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autotune.cli", "nightly", "run",
                           "--definitions", str(defs), "--json", *args],
                          capture_output=True, text=True, timeout=600)


def test_second_night_flags_the_injected_regression(tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "drift.toml").write_text(DEFINITION)
    out = schedule.study_dir("drift-redis")

    first = nightly(defs)
    assert first.returncode == 0, first.stderr[-2000:]
    [night1] = json.loads(first.stdout)
    assert night1["drift"]["status"] == "no-policy" and night1["error"] is None
    assert Path(night1["policy"]).exists() and Path(night1["report"]).exists()
    assert "not due" in nightly(defs).stderr  # same day: nothing runs

    policy = load_policy(Path(night1["policy"]))
    injected = policy.model_copy(update={
        "knobs": [PolicyKnob(name="net.ipv4.tcp_autocorking", backend="sysctl", value=0)],
        "evidence": policy.evidence.model_copy(update={
            "verdict": "improved",
            "metrics": {"throughput": MetricEvidence(effect=CLAIM, ci_low=0.7, ci_high=0.9, n=6)}})})
    write_policy(injected, out / "best.toml")
    yesterday = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    schedule.update_state("drift-redis", last_started=yesterday)

    second = nightly(defs)
    assert second.returncode == 6, second.stderr[-2000:]  # 6: a drift check flagged
    [night2] = json.loads(second.stdout)
    drift = night2["drift"]
    assert drift["status"] == "regression", drift["summary"]
    assert drift["policy"] == {"net.ipv4.tcp_autocorking": 0}
    assert drift["recorded"] == pytest.approx(CLAIM)
    assert drift["fresh"]["n"] == 6 and drift["fresh"]["ci_high"] < CLAIM - 0.05
    assert len(drift["pairs"]) == 6
    # autocorking off may even measure as a real loss here: both wordings flag the claim
    assert ("lost its throughput gain" in drift["summary"]
            or "now hurts throughput" in drift["summary"]) and "95% CI" in drift["summary"]

    study = optuna.load_study(study_name=night2["study"],
                              storage=f"sqlite:///{schedule.nightly_dir().parent / 'studies.db'}")
    assert study.user_attrs["autotune.drift"]["status"] == "regression"
    best = load_policy(out / "best.toml")
    assert best.evidence.study == night2["study"]  # the harmful claim is not recommended again
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [h["drift"]["status"] for h in history] == ["no-policy", "regression"]
    state = schedule.load_state()["drift-redis"]
    assert state["last_drift"] == "regression" and state["last_study"] == night2["study"]
