"""Every shape GCC gives kernel constants, on a corpus whose answers are known by construction.

The corpus (tests/analysis/corpus) is compiled with the kernel's code-generation flags and
run through the whole pipeline: line table, seeds, candidates, angr spans, catalog.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import analyze
from analysis.kernel_files import KernelFiles
from autotune.core.catalog import Catalog, MemoryLocation

CORPUS = Path(__file__).parent / "corpus"

NAMES = ["CWND_INIT", "RTO_MIN_J", "TIMEOUT_INIT_J", "LIMIT_LT", "BATCH_SEL", "RANGE_MAX",
         "TABLE_SIZE", "SCALE_LOG", "RESTART_MAX", "SHIFT_BY"]


@pytest.fixture(scope="module")
def catalog(corpus_elf: Path, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    work = tmp_path_factory.mktemp("cache")
    config = work / "config"
    config.write_text("CONFIG_HZ=250\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("AUTOTUNE_CACHE_DIR", str(work))
    try:
        kernel = KernelFiles(corpus_elf, CORPUS, config, None, "corpus", "")
        result = analyze.analyze(kernel, names=NAMES, oracle=False, jobs=1,
                                 tsv=work / "no-paper-list.tsv", force=True)
    finally:
        mp.undo()
    assert result.path is not None and result.path.exists()
    return result.catalog


def sites(catalog: Catalog, name: str) -> list:
    return catalog.knob(name).sites


def reason(catalog: Catalog, name: str) -> str:
    return next(u.reason for u in catalog.unsupported if u.name == name)


def test_plain_store_is_a_memory_site(catalog: Catalog) -> None:
    (s,) = sites(catalog, "CWND_INIT")
    assert s.function == "init_store" and s.synthesis == "memory" and s.expr == "V"
    assert s.location == MemoryLocation(base_reg="rdi", disp=0x10, size=4)
    assert s.expected_default == 10 and s.probe_offset == s.cs_end


def test_merged_movabs_halves_and_hz_jiffies(catalog: Catalog) -> None:
    (lo,) = sites(catalog, "RTO_MIN_J")   # HZ/5 at CONFIG_HZ=250: 50 jiffies, low half
    (hi,) = sites(catalog, "TIMEOUT_INIT_J")  # HZ: 250, high half
    assert catalog.knob("RTO_MIN_J").default == 50
    assert lo.function == hi.function == "init_merged" and lo.location == hi.location == "rax"
    assert lo.expr == f"{250 << 32} | V" and hi.expr == "(V << 32) | 50"
    assert lo.expected_default == hi.expected_default == (250 << 32) | 50
    assert lo.synthesis == "register"


def test_less_than_compiled_as_le_v_minus_1(catalog: Catalog) -> None:
    (s,) = sites(catalog, "LIMIT_LT")
    assert (s.function, s.location, s.expr, s.synthesis) == ("below_limit", "flags", "V-1", "flags")
    assert s.expected_default == 36 and s.compare_operand == "edi"
    assert s.cs_end > s.cs_start and s.probe_offset == s.cs_end


def test_branchless_select_two_immediates(catalog: Catalog) -> None:
    got = sorted((s.expr, s.synthesis, s.recompute_op) for s in sites(catalog, "BATCH_SEL"))
    assert got == [("-V", "save-recompute", "and"), ("V*2", "save-recompute", "add")]
    assert all(s.save_offset == s.cs_start for s in sites(catalog, "BATCH_SEL"))


def test_range_check_lea_minus_2(catalog: Catalog) -> None:
    (s,) = sites(catalog, "RANGE_MAX")
    assert (s.function, s.expr, s.expected_default) == ("in_range", "V-2", 39)


def test_index_mask_into_address_is_unsafe(catalog: Catalog) -> None:
    assert "memory address" in reason(catalog, "TABLE_SIZE")


def test_ilog2_is_log2_of_a_power_of_two(catalog: Catalog) -> None:
    knob = catalog.knob("SCALE_LOG")  # x / 8 compiled as 'shr $3'
    (s,) = knob.sites
    assert (s.function, s.expr, s.expected_default) == ("scaled", "log2(V)", 3)
    assert [c.kind for c in knob.domain.constraints] == ["pow2"]


def test_value_live_across_call_gets_conservative_span(catalog: Catalog) -> None:
    (s,) = sites(catalog, "RESTART_MAX")
    assert s.function == "restart_loop" and s.location == "ebx" and s.synthesis == "register"
    assert s.safe_spans and s.safe_spans[0].conservative and s.safe_spans[0].start == 0


def test_shift_amount_is_bounded(catalog: Catalog) -> None:
    knob = catalog.knob("SHIFT_BY")
    (s,) = knob.sites
    assert s.recompute_op == "shl" and knob.domain.max <= 31


def test_probe_offsets_prefer_jump_optimizable(catalog: Catalog) -> None:
    for knob in catalog.knobs:
        for s in knob.sites:
            assert s.probe_offset == s.probe_offsets[0]
            assert s.cs_start < s.probe_offset <= s.cs_end or s.synthesis == "memory"
