"""Policy files through the real CLI: one-line errors with exit 2, nothing half-applied."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autotune.core.kernel import running_kernel
from autotune.policy.schema import (
    Evidence,
    Policy,
    PolicyKernel,
    PolicyKnob,
    load_policy,
    write_policy,
)

SYSCTL = Path("/proc/sys/net/core")


def autotune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autotune.cli", *args], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=120)


def policy(knobs: list[PolicyKnob], build_id: str | None = None) -> Policy:
    k = running_kernel()
    return Policy(workload="redis", target="host",
                  kernel=PolicyKernel(release=k.release, build_id=build_id or k.build_id),
                  knobs=knobs,
                  evidence=Evidence(study="s", storage="sqlite://", verdict="improved", summary="t",
                                    objective="throughput", trials=3))


def assert_one_line_exit_2(res: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], res.stderr


def test_roundtrip(tmp_path: Path) -> None:
    p = policy([PolicyKnob(name="net.core.dev_weight", backend="sysctl", value=128)])
    write_policy(p, tmp_path / "p.toml")
    assert load_policy(tmp_path / "p.toml") == p


@pytest.mark.parametrize(("content", "fragment"), [
    ("not = [toml", "not valid TOML"),
    ("version = 99", "version 99"),
    ("version = 1\nworkload = 'redis'", "target"),
])
def test_malformed_policy(tmp_path: Path, content: str, fragment: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(content)
    assert_one_line_exit_2(autotune("apply", str(f)), fragment)


def test_other_kernel_build_is_refused(tmp_path: Path) -> None:
    write_policy(policy([PolicyKnob(name="net.core.dev_weight", backend="sysctl", value=128)],
                        build_id="00" * 20), tmp_path / "p.toml")
    assert_one_line_exit_2(autotune("apply", str(tmp_path / "p.toml")), "re-tune on this build")


@pytest.mark.root
def test_out_of_domain_value_changes_nothing(tmp_path: Path) -> None:
    before = (SYSCTL / "dev_weight").read_text()
    write_policy(policy([PolicyKnob(name="net.core.dev_weight", backend="sysctl", value=100),
                         PolicyKnob(name="net.core.somaxconn", backend="sysctl", value=5)]),
                 tmp_path / "p.toml")
    assert_one_line_exit_2(autotune("apply", str(tmp_path / "p.toml")), "outside domain")
    assert (SYSCTL / "dev_weight").read_text() == before


@pytest.mark.root
def test_apply_dry_run_apply_revert_leaves_sysctls_as_found(tmp_path: Path) -> None:
    files = [SYSCTL / "dev_weight", SYSCTL / "netdev_budget"]
    before = [f.read_text() for f in files]
    new = [int(before[0]) * 2, int(before[1]) + 7]
    write_policy(policy([PolicyKnob(name="net.core.dev_weight", backend="sysctl", value=new[0]),
                         PolicyKnob(name="net.core.netdev_budget", backend="sysctl", value=new[1])]),
                 tmp_path / "p.toml")
    try:
        dry = autotune("apply", str(tmp_path / "p.toml"), "--dry-run")
        assert dry.returncode == 0 and "would write net.core.dev_weight" in dry.stdout
        assert [f.read_text() for f in files] == before
        res = autotune("apply", str(tmp_path / "p.toml"))
        assert res.returncode == 0, res.stderr
        assert [int(f.read_text()) for f in files] == new
        again = autotune("apply", str(tmp_path / "p.toml"))  # replaces, does not stack
        assert again.returncode == 0
    finally:
        rev = autotune("revert")
    assert rev.returncode == 0 and "restored 2 knob(s)" in rev.stdout, rev.stdout + rev.stderr
    assert [f.read_text() for f in files] == before


def test_export_of_unknown_study_is_one_line(tmp_path: Path) -> None:
    assert_one_line_exit_2(autotune("policy", "export", "nope", "-o", str(tmp_path / "x.toml")),
                           "no study 'nope'")


def test_unknown_workload_and_bad_option_exit_2() -> None:
    assert_one_line_exit_2(autotune("run", "--workload", "oracle", "--target", "host"), "unknown workload")
    assert_one_line_exit_2(autotune("run", "-o", "clients", "--target", "host"), "KEY=VALUE")


def test_help_has_examples_and_imports_no_heavy_deps() -> None:
    res = subprocess.run([sys.executable, "-c", (
        "import sys\nfrom autotune.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('optuna', 'ray', 'angr', 'bcc') if m in sys.modules]\n"
        "print('HEAVY', heavy)")], capture_output=True, text=True)
    assert "Examples:" in res.stdout and "HEAVY []" in res.stdout
    for cmd in ("run", "apply", "revert"):
        assert "Examples:" in autotune(cmd, "--help").stdout
