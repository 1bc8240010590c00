"""Study state in a real PostgreSQL server (a private one per test session, see postgres_server).

The study loop runs over test_runner's FakeExecutor (a fake of the layer below, named as
such); the storage, resume, export and CLI paths are the real ones against a real server.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import sqlalchemy
from postgres_server import postgres_url  # noqa: F401  (the fixture)
from test_policy_cli import assert_one_line_exit_2, autotune
from test_runner import KNOBS, FakeExecutor, config

from autotune.policy.export import policy_from_study
from autotune.policy.schema import load_policy
from autotune.study.runner import ATTR, StudyRunner
from autotune.study.storage import storage_url
from kernel_runtime.paths import data_dir


def _stored_trials(url: str, study: str) -> int:
    """Count the study's trials with plain SQL, so the rows are seen in PostgreSQL itself."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sqlalchemy.text(
                "SELECT count(*) FROM trials JOIN studies USING (study_id) WHERE study_name = :n"),
                {"n": study}).scalar_one())
    finally:
        engine.dispose()


def test_study_finishes_resumes_and_exports_from_postgres(postgres_url: str) -> None:  # noqa: F811
    cfg = config(study_name="pg-resume", storage=postgres_url, trials=3)
    first = StudyRunner(config=cfg, executor=FakeExecutor(lambda p: 0.2 if p["batch"] >= 16 else 0.0),
                        knobs=KNOBS, left_out=[])
    first.run()
    assert _stored_trials(postgres_url, "pg-resume") == 3
    again = StudyRunner(config=config(study_name="pg-resume", storage=postgres_url, trials=2),
                        executor=FakeExecutor(lambda p: 0.0), knobs=KNOBS, left_out=[])
    decision = again.run()
    assert len(again.study.trials) == 3 + 2
    assert len(again.study.user_attrs[ATTR + "preflight"]) == 2
    assert _stored_trials(postgres_url, "pg-resume") == 5

    loaded = optuna.load_study(study_name="pg-resume", storage=postgres_url)
    policy = policy_from_study(loaded, postgres_url)
    assert policy.evidence.verdict == decision["verdict"]
    assert policy.evidence.storage == postgres_url  # no password in it to hide
    assert policy.kernel.build_id == "cd" * 20
    assert not (data_dir() / "studies.db").exists()  # nothing fell back to the SQLite default


def test_cli_exports_a_postgres_study(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    StudyRunner(config=config(study_name="pg-cli", storage=postgres_url, trials=2),
                executor=FakeExecutor(lambda p: 0.3 * p["flag"]), knobs=KNOBS, left_out=[]).run()
    # A bare postgresql:// (what people type) must reach the same server through psycopg2.
    bare = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    for url, out in ((postgres_url, tmp_path / "a.toml"), (bare, tmp_path / "b.toml")):
        res = autotune("policy", "export", "pg-cli", "--storage", url, "-o", str(out))
        assert res.returncode == 0, res.stderr
        assert f"wrote {out}" in res.stdout
        policy = load_policy(out)
        assert policy.evidence.study == "pg-cli" and policy.evidence.storage == storage_url(url)
        assert policy.evidence.trials == 2
    assert load_policy(tmp_path / "a.toml").knobs == load_policy(tmp_path / "b.toml").knobs


def test_cli_unknown_study_in_postgres_lists_known(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    StudyRunner(config=config(study_name="pg-known", storage=postgres_url, trials=1),
                executor=FakeExecutor(lambda p: 0.0), knobs=KNOBS, left_out=[]).run()
    res = autotune("policy", "export", "pg-nope", "--storage", postgres_url, "-o", str(tmp_path / "x"))
    assert_one_line_exit_2(res, "no study 'pg-nope'")
    assert "pg-known" in res.stderr and not (tmp_path / "x").exists()


def test_cli_unreachable_postgres_is_one_line_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "f.toml"
    res = autotune("policy", "export", "x", "--storage", "postgresql://127.0.0.1:1/nope", "-o", str(out))
    assert_one_line_exit_2(res, "postgresql+psycopg2://127.0.0.1:1/nope': cannot open")
    assert "Connection refused" in res.stderr and not out.exists()
    hidden = autotune("policy", "export", "x", "--storage", "postgresql://u:s3cret@127.0.0.1:1/nope",
                      "-o", str(out))
    assert_one_line_exit_2(hidden, "u:***@127.0.0.1:1/nope")
    assert "s3cret" not in hidden.stderr
