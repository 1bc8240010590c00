"""Constants GCC folds into arithmetic (3-operand lea, memory add, a callee's argument, a
shift count, a signed division, a strength-reduced multiply): known answers.

The corpus file kernel/recompute.c is compiled with the kernel's code-generation flags with
the rest of the corpus; each function's site (or refusal) is fixed by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autotune.core import expr
from autotune.core.catalog import Catalog, MemoryLocation

NAMES = ["LEA_MIN_US", "STAMP_STEP", "EXPIRE_AGE", "INDEXED_AGE", "FLUSH_AGE",
         "EWMA_FACTOR", "HALF_DIV", "QUARTER_DIV", "FIT_MARGIN",
         "PERIOD_T"]


@pytest.fixture(scope="module")
def catalog(corpus_catalog: Callable[[list[str]], Catalog]) -> Catalog:
    return corpus_catalog(NAMES)


def reason(catalog: Catalog, name: str) -> str:
    return next(u.reason for u in catalog.unsupported if u.name == name)


def test_three_operand_lea_saves_its_source(catalog: Catalog) -> None:
    (s,) = catalog.knob("LEA_MIN_US").sites
    assert (s.function, s.synthesis, s.recompute_op) == ("lea_three", "save-recompute", "add")
    assert (s.location, s.save_input, s.width, s.expr) == ("edi", "rbx", "u32", "V")
    assert s.save_offset == s.cs_start and s.probe_offset == s.cs_start + 6  # the call after


def test_lea_subtracting_into_a_new_register(catalog: Catalog) -> None:
    (s,) = catalog.knob("EXPIRE_AGE").sites
    assert (s.function, s.location, s.save_input, s.width) == ("expired_before", "rax", "rdi", "u64")
    assert expr.parse(s.expr).evaluate(30000, "u64") == s.expected_default == (-30000) % (1 << 64)


def test_memory_read_modify_write(catalog: Catalog) -> None:
    (s,) = catalog.knob("STAMP_STEP").sites
    assert (s.function, s.synthesis, s.recompute_op, s.expr) == ("bump_stamp", "save-recompute", "add", "V")
    assert s.location == MemoryLocation(base_reg="rdi", disp=0x18, size=8) and s.save_input is None
    assert s.probe_offsets == [s.probe_offset] and s.probe_offset == s.cs_end
    assert s.save_offset == s.cs_start < s.cs_end


def test_indexed_lea_is_refused(catalog: Catalog) -> None:
    assert "indexed or rip-relative address is no single input register" in reason(catalog, "INDEXED_AGE")


def test_constant_consumed_by_an_inlined_callee(catalog: Catalog) -> None:
    (s,) = catalog.knob("FLUSH_AGE").sites
    assert (s.function, s.synthesis, s.location, s.expr) == ("next_due", "save-recompute", "rax", "-(V)")
    assert s.expected_default == (-500) % (1 << 64)


def test_shift_count_constant_adds_a_power_of_two(catalog: Catalog) -> None:
    knob = catalog.knob("EWMA_FACTOR")
    (s,) = knob.sites
    assert (s.function, s.expr, s.expected_default) == ("update_ewma", "1 << V", 16)
    assert (s.location, s.save_input, s.recompute_op) == ("eax", "rdx", "add")
    assert knob.domain.max <= 31


@pytest.mark.parametrize("name, first", [("HALF_DIV", "shr"), ("QUARTER_DIV", "test")])
def test_signed_division_recomputes_from_the_dividend(catalog: Catalog, name: str, first: str,
                                                      corpus_elf: Path) -> None:
    knob = catalog.knob(name)
    (s,) = knob.sites
    assert (s.synthesis, s.recompute_op, s.expr, s.expected_default) == \
        ("save-recompute", "sdiv_pow2", "log2(V)", 1 if name == "HALF_DIV" else 2)
    assert (s.location, s.save_input) == ("rax", "rbx") and s.save_offset == s.cs_start
    assert [c.kind for c in knob.domain.constraints] == ["pow2"]
    from analysis import disasm
    from analysis.elfimage import Image

    image = Image(corpus_elf)
    func = next(iter(image.by_name(s.function)))
    insns = {i.address - func.start: i for i in disasm.disassemble(image.code(func), func.start)}
    assert insns[s.cs_start].mnemonic == first and insns[s.probe_offset].mnemonic == "add"


def test_strength_reduced_multiply_is_a_chain_site(catalog: Catalog) -> None:
    (s,) = catalog.knob("FIT_MARGIN").sites  # test_corpus_chains.py has the chain shapes
    assert (s.function, s.recompute_op, s.expr) == ("fits", "mul", "V")


def test_sub_whose_flags_are_read_rewrites_them(catalog: Catalog) -> None:
    (s,) = catalog.knob("PERIOD_T").sites
    assert (s.function, s.location, s.expr, s.recompute_flags) == ("period_slot", "edi", "-(V)", True)
    assert s.probe_offsets == [s.probe_offset] == [s.cs_end] and s.cs_end == s.cs_start + 3
