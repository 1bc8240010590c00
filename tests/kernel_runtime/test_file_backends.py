"""Contract tests for every file-backed Backend, on a private root and on the real /proc/sys."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autotune.core.catalog import Domain, Knob
from autotune.core.errors import BadInputError
from kernel_runtime.backend import Backend, Scope
from kernel_runtime.tunables import DebugfsBackend, SysctlBackend, curated_knobs

BACKENDS = [SysctlBackend, DebugfsBackend]


def knob_for(backend: type[Backend], path: str) -> Knob:
    return Knob(name=f"test.{path}", subsystem="test", category="batch", backend=backend.kind,  # type: ignore[arg-type]
                path=path, domain=Domain(min=0, max=1000))


@pytest.fixture(params=BACKENDS, ids=lambda b: b.kind)
def backend_and_root(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Backend, Path]:
    return request.param(root=tmp_path), tmp_path


def test_read_set_restore_roundtrip(backend_and_root: tuple[Backend, Path]) -> None:
    backend, root = backend_and_root
    (root / "a").mkdir()
    (root / "a" / "b").write_text("64\n")
    knob = knob_for(type(backend), "a/b")
    assert backend.unavailable_reason(knob) is None
    backend.load(knob)
    token = backend.read(knob)
    backend.set(knob, 128)
    assert (root / "a" / "b").read_text() == "128\n"
    assert [s.value for s in backend.status()] == ["128"]
    backend.restore(knob, token)
    assert (root / "a" / "b").read_text() == "64\n"
    backend.unload()
    assert backend.status() == []


def test_missing_and_non_integer_files_are_unavailable(backend_and_root: tuple[Backend, Path]) -> None:
    backend, root = backend_and_root
    assert "does not exist" in (backend.unavailable_reason(knob_for(type(backend), "nope")) or "") or \
        "not mounted" in (backend.unavailable_reason(knob_for(type(backend), "nope")) or "")
    (root / "multi").write_text("4096 131072 6291456\n")
    assert "not one integer" in (backend.unavailable_reason(knob_for(type(backend), "multi")) or "")


def test_only_global_scope(backend_and_root: tuple[Backend, Path]) -> None:
    backend, root = backend_and_root
    (root / "x").write_text("1\n")
    with pytest.raises(BadInputError, match="global"):
        backend.set(knob_for(type(backend), "x"), 2, Scope("pid", 1))


def test_curated_knobs_have_sane_domains() -> None:
    knobs = curated_knobs()
    assert len({k.name for k in knobs}) == len(knobs) >= 10
    for k in knobs:
        assert k.backend in ("sysctl", "debugfs") and k.path and k.unit
        assert k.domain.min <= k.domain.max


@pytest.mark.root
def test_real_sysctl_probe_and_roundtrip() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root: run the suite as root (CI does)")
    backend = SysctlBackend()
    knob = next(k for k in curated_knobs() if k.name == "net.core.netdev_budget")
    assert backend.unavailable_reason(knob) is None
    token = backend.read(knob)
    try:
        backend.set(knob, 123)
        assert Path("/proc/sys/net/core/netdev_budget").read_text().strip() == "123"
    finally:
        backend.restore(knob, token)
    assert backend.read(knob) == token


@pytest.mark.root
def test_every_usable_curated_knob_accepts_its_domain_bounds(tmp_path: Path) -> None:
    """A domain wider than the kernel allows fails trials at random: catch it here."""
    from autotune.core.errors import KnobRejected
    from kernel_runtime.controller import KnobController
    from kernel_runtime.journal import Journal

    control = KnobController(backends={"sysctl": SysctlBackend(), "debugfs": DebugfsBackend()},
                             journal=Journal(tmp_path / "j.jsonl"))
    knobs = {k.name: k for k in curated_knobs()}
    usable, _ = control.usable(list(knobs.values()))
    assert usable, "no curated knob is writable here"
    rejected = []
    try:
        for k in usable:
            for v in (k.domain.min, k.domain.max):
                try:
                    control.apply({k.name: v}, knobs)
                except KnobRejected as e:
                    rejected.append(str(e))
    finally:
        control.close()
    assert rejected == []
