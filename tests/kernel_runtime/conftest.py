"""Fixtures shared by the kernel_runtime tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def lab_headers() -> Path:
    """The lab kernel's headers tree (its vmlinux is BTF only), fetched once and cached."""
    from analysis.debian_kernel import fetch, resolve_version

    version = resolve_version()
    vdir = fetch(("headers", "headers-common", "kbuild"), version=version)
    return vdir / "root/usr/src" / f"linux-headers-{version.release}"


@pytest.fixture(scope="session")
def lab_files():  # type: ignore[no-untyped-def]
    """The lab kernel's -dbg vmlinux, source tree and config, for tests that analyse it first."""
    from analysis import kernel_files

    return kernel_files.lab_kernel()


@pytest.fixture(scope="session")
def oracle_knob(lab_files: Any) -> Callable[[str], Any]:
    """A constant analysed on the lab kernel with the oracle, fresh (not the cached catalog):
    the lab tests prove what the analysis emits now."""
    from analysis import analyze

    def knob(name: str) -> Any:
        return analyze.analyze(lab_files, names=[name], oracle=True, jobs=2, force=True).catalog.knob(name)
    return knob


@pytest.fixture(scope="module")
def lab() -> Iterator[Any]:
    """A lab VM per test module (private, booted on demand), closed after its last test."""
    from kernel_runtime.lab.target import LabTarget

    target = LabTarget()
    try:
        yield target
    finally:
        target.close()


@pytest.fixture(scope="module")
def knobs(lab: Any) -> dict[str, Any]:
    """The module's lab SIE knobs by name (whichever ``lab`` fixture the module uses)."""
    return {k.name: k for k in lab.knobs() if k.backend == "sie"}
