"""Fixtures for analysis tests: the shape corpus compiled like the kernel, and the lab build."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from autotune.core.catalog import Catalog

CORPUS = Path(__file__).parent / "corpus"
# The x86-64 code-generation flags of Debian's 6.12 kbuild command (.o.cmd) that shape
# constants; -nostdlib/-static only so the corpus links into a standalone ELF.
KERNEL_LIKE_FLAGS = [
    "-O2", "-g", "-std=gnu11", "-fno-strict-aliasing", "-fno-common", "-fno-PIE", "-no-pie",
    "-mno-red-zone", "-mno-sse", "-mno-mmx", "-mno-sse2", "-fno-asynchronous-unwind-tables",
    "-fno-jump-tables", "-falign-functions=16", "-fno-delete-null-pointer-checks",
    "-fno-stack-protector", "-funsigned-char", "-fcf-protection=branch", "-nostdlib", "-static",
]


@pytest.fixture(scope="session")
def corpus_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus linked into one ELF with DWARF (gcc is the kernel's own compiler here)."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc missing: run 'bash scripts/setup.sh'")
    out = tmp_path_factory.mktemp("corpus") / "shapes.elf"
    # relative paths from the corpus root, so line-table paths read like a kernel tree's
    sources = sorted(str(p.relative_to(CORPUS)) for p in (CORPUS / "kernel").glob("*.c"))
    subprocess.run(["gcc", *KERNEL_LIKE_FLAGS, "-o", str(out), *sources], check=True, cwd=CORPUS)
    return out


@pytest.fixture(scope="module")
def corpus_catalog(corpus_elf: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> Callable[[list[str]], Catalog]:
    """Analyse named corpus constants (no oracle) in a private cache: returns the Catalog."""
    from analysis import analyze
    from analysis.kernel_files import KernelFiles

    def run(names: list[str]) -> Catalog:
        work = tmp_path_factory.mktemp("cache")
        (work / "config").write_text("CONFIG_HZ=250\n")
        mp = pytest.MonkeyPatch()
        mp.setenv("AUTOTUNE_CACHE_DIR", str(work))
        try:
            kernel = KernelFiles(corpus_elf, CORPUS, work / "config", None, "corpus", "")
            return analyze.analyze(kernel, names=names, oracle=False, jobs=1,
                                   tsv=work / "no-paper-list.tsv", force=True).catalog
        finally:
            mp.undo()

    return run


@pytest.fixture(scope="session")
def lab_files():  # type: ignore[no-untyped-def]
    """The lab kernel's -dbg vmlinux, source tree and config (fetched once, then cached)."""
    from analysis import kernel_files

    return kernel_files.lab_kernel()
