"""KnobController + Journal: validate first, journal before write, revert on every path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autotune.core.catalog import Domain, Knob
from autotune.core.errors import BadInputError
from kernel_runtime.controller import KnobController
from kernel_runtime.journal import Journal
from kernel_runtime.tunables import SysctlBackend


def setup_files(root: Path) -> dict[str, Knob]:
    knobs = {}
    for name, value in (("alpha", "10\n"), ("beta", "20\n")):
        (root / name).write_text(value)
        knobs[name] = Knob(name=name, subsystem="t", category="batch", backend="sysctl", path=name,
                           domain=Domain(min=1, max=100))
    return knobs


def make(root: Path, journal: Path, kind: str = "transient") -> KnobController:
    return KnobController(backends={"sysctl": SysctlBackend(root=root)}, journal=Journal(journal),
                          kind=kind)  # type: ignore[arg-type]


def test_apply_then_revert_restores_exact_text(tmp_path: Path) -> None:
    knobs = setup_files(tmp_path)
    c = make(tmp_path, tmp_path / "j.jsonl")
    c.apply({"alpha": 11, "beta": 21}, knobs)
    c.apply({"alpha": 12}, knobs)
    assert (tmp_path / "alpha").read_text() == "12\n"
    c.revert()
    assert (tmp_path / "alpha").read_text() == "10\n"
    assert (tmp_path / "beta").read_text() == "20\n"
    assert Journal(tmp_path / "j.jsonl").open_entries() == {}


def test_out_of_domain_value_writes_nothing(tmp_path: Path) -> None:
    knobs = setup_files(tmp_path)
    c = make(tmp_path, tmp_path / "j.jsonl")
    with pytest.raises(BadInputError, match="outside domain"):
        c.apply({"alpha": 50, "beta": 1000}, knobs)
    assert (tmp_path / "alpha").read_text() == "10\n"
    assert not (tmp_path / "j.jsonl").exists()


def test_failure_mid_batch_undoes_the_batch(tmp_path: Path) -> None:
    knobs = setup_files(tmp_path)
    (tmp_path / "beta").unlink()
    (tmp_path / "beta").mkdir()  # writing a directory fails half-way through the batch
    c = make(tmp_path, tmp_path / "j.jsonl")
    with pytest.raises(OSError):
        c.apply({"alpha": 55, "beta": 5}, knobs)
    assert (tmp_path / "alpha").read_text() == "10\n"


def test_journal_is_written_before_the_kernel(tmp_path: Path) -> None:
    knobs = setup_files(tmp_path)
    c = make(tmp_path, tmp_path / "j.jsonl")
    c.apply({"alpha": 33}, knobs)
    rec = json.loads((tmp_path / "j.jsonl").read_text().splitlines()[0])
    assert rec["old"] == "10\n" and rec["new"] == 33 and rec["knob"] == "alpha"


def test_recover_restores_a_dead_owner_but_not_a_live_one(tmp_path: Path) -> None:
    knobs = setup_files(tmp_path)
    journal = tmp_path / "j.jsonl"
    child = subprocess.run([sys.executable, "-c", (
        "import sys, os\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from pathlib import Path\n"
        "from autotune.core.catalog import Domain, Knob\n"
        "from test_controller import make\n"
        f"root = Path({str(tmp_path)!r})\n"
        "k = Knob(name='alpha', subsystem='t', category='batch', backend='sysctl', path='alpha',"
        " domain=Domain(min=1, max=100))\n"
        f"make(root, Path({str(journal)!r})).apply({{'alpha': 77}}, {{'alpha': k}})\n"
        "os._exit(0)  # die without reverting, like a SIGKILLed controller\n")], check=True)
    assert child.returncode == 0
    assert (tmp_path / "alpha").read_text() == "77\n"
    live = make(tmp_path, journal)
    live.apply({"beta": 99}, knobs)
    other = make(tmp_path, journal)
    assert other.recover() == ["alpha"]
    assert (tmp_path / "alpha").read_text() == "10\n"
    assert (tmp_path / "beta").read_text() == "99\n"  # its owner (this process) is alive
    live.revert()
    assert (tmp_path / "beta").read_text() == "20\n"


def test_policy_sessions_survive_recover_unless_asked(tmp_path: Path) -> None:
    knobs = setup_files(tmp_path)
    journal = tmp_path / "j.jsonl"
    make(tmp_path, journal, "policy").apply({"alpha": 42}, knobs)
    assert make(tmp_path, journal).recover() == []
    assert (tmp_path / "alpha").read_text() == "42\n"
    assert make(tmp_path, journal).recover(include_policies=True) == ["alpha"]
    assert (tmp_path / "alpha").read_text() == "10\n"


def test_torn_last_line_is_ignored(tmp_path: Path) -> None:
    knobs = setup_files(tmp_path)
    journal = tmp_path / "j.jsonl"
    make(tmp_path, journal, "policy").apply({"alpha": 42}, knobs)
    with open(journal, "a") as fh:
        fh.write('{"op": "set", "sess')
    assert make(tmp_path, journal).recover(include_policies=True) == ["alpha"]


def test_second_controller_on_the_same_kernel_is_refused(tmp_path: Path) -> None:
    from autotune.core.errors import EnvironmentProblem
    from kernel_runtime.kernel_lock import KernelLock

    knobs = setup_files(tmp_path)
    lock_path = tmp_path / "kernel.lock"
    first = KnobController(backends={"sysctl": SysctlBackend(root=tmp_path)},
                           journal=Journal(tmp_path / "j1.jsonl"), lock=KernelLock(lock_path))
    first.apply({"alpha": 11}, knobs)
    holder = subprocess.run([sys.executable, "-c", (
        "from pathlib import Path\nfrom kernel_runtime.kernel_lock import KernelLock\n"
        f"KernelLock(Path({str(lock_path)!r})).acquire()\n")], capture_output=True, text=True)
    assert holder.returncode != 0 and "another autotune" in holder.stderr
    first.close()
    assert (tmp_path / "alpha").read_text() == "10\n"
    second = KnobController(backends={"sysctl": SysctlBackend(root=tmp_path)},
                            journal=Journal(tmp_path / "j2.jsonl"), lock=KernelLock(lock_path))
    second.apply({"alpha": 12}, knobs)
    second.close()
    with pytest.raises(EnvironmentProblem, match="another autotune"):
        _held_elsewhere(lock_path)


def _held_elsewhere(lock_path: Path) -> None:
    """Hold the lock in a child, then try to take it here."""
    from kernel_runtime.kernel_lock import KernelLock

    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pathlib import Path\nfrom kernel_runtime.kernel_lock import KernelLock\n"
        f"lock = KernelLock(Path({str(lock_path)!r}))\nlock.acquire()\nprint('held', flush=True)\n"
        "time.sleep(30)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        KernelLock(lock_path).acquire()
    finally:
        child.kill()
        child.wait()
