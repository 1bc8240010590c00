"""Constants whose instruction's flags are read afterwards, and a signed right shift: known
answers from kernel/flags.c (and recompute.c's FLAG_ADD), compiled with the kernel's flags.

An and/add/test whose flags a jump reads becomes a site that rewrites those flags too; a
shift whose flags are read and a logical op beside a pushf (AF undefined) stay refused.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autotune.core.catalog import Catalog

NAMES = ["SEQ_BATCH", "STABLE_WAIT", "INO_BATCH", "RATE_SCALE", "SHIFT_READ", "AF_BATCH", "FLAG_ADD"]


@pytest.fixture(scope="module")
def catalog(corpus_catalog: Callable[[list[str]], Catalog]) -> Catalog:
    return corpus_catalog(NAMES)


def reason(catalog: Catalog, name: str) -> str:
    return next(u.reason for u in catalog.unsupported if u.name == name)


def test_mask_whose_zero_flag_is_read_rewrites_logic_flags(catalog: Catalog) -> None:
    knob = catalog.knob("SEQ_BATCH")
    (s,) = knob.sites
    assert (s.function, s.synthesis, s.recompute_op, s.location, s.expr) == \
        ("seq_due", "save-recompute", "and", "edx", "V-1")
    assert (s.recompute_flags, s.flags_op, s.expected_default) == (True, "and", 15)
    assert s.probe_offsets == [s.probe_offset] == [s.cs_end] == [s.cs_start + 3]  # on the jne
    assert [c.kind for c in knob.domain.constraints] == ["pow2"]


def test_add_whose_sign_flag_is_read_rewrites_add_flags(catalog: Catalog) -> None:
    (s,) = catalog.knob("STABLE_WAIT").sites
    assert (s.function, s.recompute_op, s.location, s.width, s.expr) == \
        ("stable_since", "add", "rcx", "u64", "V")
    assert (s.recompute_flags, s.flags_op) == (True, "add")
    assert s.probe_offset == s.cs_start + 7  # on the js after the 7-byte add


def test_add_into_a_32_bit_register(catalog: Catalog) -> None:
    (s,) = catalog.knob("FLAG_ADD").sites
    assert (s.function, s.location, s.width, s.flags_op, s.expected_default) == \
        ("add_then_test", "edi", "u32", "add", 777)


def test_test_is_a_flags_site_of_an_and(catalog: Catalog) -> None:
    knob = catalog.knob("INO_BATCH")
    s = next(s for s in knob.sites if s.synthesis == "flags")
    assert (s.function, s.flags_op, s.compare_operand, s.expr, s.expected_default) == \
        ("next_ino", "test", "eax", "V-1", 1023)
    assert s.cs_end == s.probe_offset == s.cs_start + 5  # the je
    assert "pow2" in [c.kind for c in knob.domain.constraints]


def test_arithmetic_right_shift_recomputes(catalog: Catalog) -> None:
    knob = catalog.knob("RATE_SCALE")
    (s,) = knob.sites
    assert (s.function, s.synthesis, s.recompute_op, s.location, s.width, s.expr) == \
        ("rate_unscaled", "save-recompute", "sar", "rbx", "u64", "V")
    assert not s.recompute_flags and s.save_offset == s.cs_start
    assert knob.domain.max <= 63


def test_shift_whose_flags_are_read_is_refused(catalog: Catalog) -> None:
    why = reason(catalog, "SHIFT_READ")
    assert "'sar eax, 3' sets flags that 'je" in why and "stale" in why


def test_logic_op_beside_pushf_is_refused(catalog: Catalog) -> None:
    why = reason(catalog, "AF_BATCH")
    assert "leaves AF undefined, and 'pushf" in why and "af_due+" in why
