"""Strength-reduced multiply chains (corpus kernel/chains.c): found, refused, and judged by
the chain-aware diff the oracle runs, on builds of the corpus object at three values.

The oracle's builds are made the way the kernel oracle makes them: the definition line is
rewritten in a private copy of the header and the object is compiled with the corpus flags.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from analysis import chaindiff, find_sites, linetable, objdiff, seeds
from analysis.elfimage import Image
from autotune.core.catalog import Catalog
from tests.analysis.conftest import CORPUS, KERNEL_LIKE_FLAGS


@pytest.fixture(scope="module")
def catalog(corpus_catalog: Callable[[list[str]], Catalog]) -> Catalog:
    return corpus_catalog(["CWND_SEGMENTS", "BUSY_WEIGHT", "TIGHT_FACTOR", "FIT_MARGIN",
                           "LIVE_FACTOR"])


def test_lea_add_chain_is_a_multiply_site(catalog: Catalog) -> None:
    (s,) = catalog.knob("CWND_SEGMENTS").sites
    assert (s.function, s.synthesis, s.recompute_op, s.expr) == ("init_space", "save-recompute",
                                                                  "mul", "V")
    assert (s.location, s.save_input, s.width, s.expected_default) == ("eax", "rax", "u32", 10)
    # saved on the lea, rewritten on the instruction after the add (lea 3 bytes, add 2)
    assert s.save_offset == s.cs_start and s.probe_offsets == [s.probe_offset] == [s.cs_start + 5]


def test_chain_times_v_minus_one_beside_its_shift(catalog: Catalog) -> None:
    knob = catalog.knob("BUSY_WEIGHT")
    chain = next(s for s in knob.sites if s.recompute_op == "mul")
    assert (chain.function, chain.expr, chain.location, chain.save_input) == ("busy_ewma", "V-1",
                                                                             "edx", "rax")
    assert any(s.expr == "log2(V)" for s in knob.sites)


def test_fits_capacity_shape(catalog: Catalog) -> None:
    (s,) = catalog.knob("FIT_MARGIN").sites
    assert (s.function, s.expr, s.recompute_op, s.location, s.save_input, s.width) == (
        "fits", "V", "mul", "rax", "rdi", "u64")


def test_chain_whose_flags_are_read_is_refused(catalog: Catalog) -> None:
    why = next(u.reason for u in catalog.unsupported if u.name == "TIGHT_FACTOR")
    assert "chain at tight+0x4" in why and "'add eax, eax' sets flags that 'js" in why


def test_chain_leaving_a_live_intermediate_is_refused(catalog: Catalog) -> None:
    why = next(u.reason for u in catalog.unsupported if u.name == "LIVE_FACTOR")
    assert "chain at shared_step+0x5" in why and "it also leaves rbx" in why


def _build(tmp: Path, name: str, value: int, unit: str = "chains") -> Path:
    """kernel/<unit>.c with ``name`` rewritten to ``value`` in a copy of its header."""
    work = tmp / f"{name}-{value}"
    for sub in ("kernel", "include"):
        shutil.copytree(CORPUS / sub, work / sub)
    header = work / f"include/{unit}.h"
    header.write_text("".join(f"#define {name} {value}\n" if line.startswith(f"#define {name} ")
                              else line for line in header.read_text().splitlines(True)))
    out = work / f"{unit}.o"
    flags = [f for f in KERNEL_LIKE_FLAGS if f not in ("-nostdlib", "-static", "-no-pie")]
    subprocess.run(["gcc", *flags, "-c", f"kernel/{unit}.c", "-o", str(out)], check=True, cwd=work)
    return out


@pytest.mark.parametrize("name, function, values", [
    ("CWND_SEGMENTS", "init_space", (10, 21, 32)),
    ("BUSY_WEIGHT", "busy_ewma", (8, 16, 32)),
])
def test_oracle_accepts_the_chain_at_other_values(corpus_elf: Path, tmp_path: Path, name: str,
                                                  function: str, values: tuple[int, ...]) -> None:
    results = _results(corpus_elf, tmp_path, name)
    paths = [_build(tmp_path, name, v) for v in values]
    builds = [objdiff.functions(p) for p in paths]
    changes, reshaped = objdiff.diff(builds)
    assert function in reshaped  # other instructions at other values: the plain diff gives up
    image = Image(corpus_elf)
    changes, reshaped, confirmed = chaindiff.apply(paths, builds, values, results, image,
                                                   changes, reshaped)
    assert function not in reshaped and [f for f, _ in confirmed] == [function]
    # a claim of other values than the builds hold: their chains are no x*f(v), so refused
    _, still, none = chaindiff.apply(paths, builds, (values[0], values[1] + 1, values[2] + 1),
                                     results, image, *objdiff.diff(builds))
    assert function in still and not none


def _results(elf: Path, tmp: Path, name: str) -> list:
    image = Image(elf)
    table = linetable.line_table(elf, tmp / "lines")
    seed = seeds.resolve(name, "", CORPUS, 250)
    seeds.find_uses([seed], CORPUS)
    found = find_sites.find([seed], [(image, table)], {name: 1}, jobs=1)[name]
    return [r for r in found.results if r.site is not None]


def test_signed_division_idiom_is_no_reshape(corpus_elf: Path, tmp_path: Path) -> None:
    # freeable / V: 'shr $63; add; sar $1' at V=2, 'test; lea 3; cmovns; sar $2' at V=4: the
    # bias collapses, the sar's count changes as log2(V) and its site is matched as before
    results = _results(corpus_elf, tmp_path, "HALF_DIV")
    assert [r.site.recompute_op for r in results] == ["sdiv_pow2"]
    values = (2, 4, 8)
    paths = [_build(tmp_path, "HALF_DIV", v, "recompute") for v in values]
    builds = [objdiff.functions(p) for p in paths]
    changes, reshaped = objdiff.diff(builds)
    assert "half_of" in reshaped
    changes, reshaped, _ = chaindiff.apply(paths, builds, values, results, Image(corpus_elf),
                                           changes, reshaped)
    assert "half_of" not in reshaped
    assert [(c.mnemonic, c.imms) for c in changes if c.function == "half_of"] == [("sar", (1, 2, 3))]
