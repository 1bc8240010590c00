"""Constants whose value is the hard part: static consts, multi-line macros, jiffies, ilog2.

The corpus file kernel/values.c (with include/values.h) is compiled with the kernel's
code-generation flags; each answer below is fixed by construction.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autotune.core import expr
from autotune.core.catalog import Catalog, MemoryLocation

NAMES = ["back_max", "live_budget", "MULTI_LIMIT", "MERGE_MS", "DIV_POW2", "MUL_POW2", "PER_PAGE",
         "ZERO_DELAY"]


@pytest.fixture(scope="module")
def catalog(corpus_catalog: Callable[[list[str]], Catalog]) -> Catalog:
    return corpus_catalog(NAMES)


def test_static_const_is_a_constant_and_members_are_not_uses(catalog: Catalog) -> None:
    knob = catalog.knob("back_max")  # static const int back_max = 16 * 1024;
    assert knob.default == 16384 and knob.source == "kernel/values.c:13"
    (s,) = knob.sites  # q->back_max = back_max: the member of the same name is no use
    assert (s.function, s.synthesis, s.expr, s.expected_default) == ("init_queue", "memory", "V", 16384)
    assert s.location == MemoryLocation(base_reg="rdi", disp=0x10, size=4)


def test_static_variable_is_memory(catalog: Catalog) -> None:
    reason = next(u.reason for u in catalog.unsupported if u.name == "live_budget")
    assert "not const" in reason and "tune it as memory" in reason


def test_multi_line_define_folds_through_other_macros(catalog: Catalog) -> None:
    knob = catalog.knob("MULTI_LIMIT")  # (VALUES_HZ / 2 + 3) over three lines
    assert knob.default == 128
    (s,) = knob.sites
    assert (s.function, s.location, s.expr, s.expected_default) == ("over_limit", "flags", "V", 128)


def test_sizeof_in_a_default_comes_from_dwarf(catalog: Catalog) -> None:
    knob = catalog.knob("PER_PAGE")  # 8192 / sizeof(struct queue_like): 32 bytes in DWARF
    assert knob.default == 256
    (s,) = knob.sites
    assert (s.function, s.location, s.expr, s.expected_default) == ("clamp_batch", "eax", "V", 256)


def test_zero_default_loaded_by_xor_is_a_register_site(catalog: Catalog) -> None:
    knob = catalog.knob("ZERO_DELAY")  # queue_later(q, 0): 'xor %esi, %esi' before the call
    assert (knob.default, knob.domain.min) == (0, 0) and knob.domain.max > 0
    (s,) = knob.sites
    assert (s.function, s.location, s.synthesis, s.expr, s.expected_default) == \
        ("kick", "esi", "register", "V", 0)


def test_msecs_to_jiffies_of_a_constant_is_in_jiffies(catalog: Catalog) -> None:
    (s,) = catalog.knob("MERGE_MS").sites  # msecs_to_jiffies(600) = 150 at HZ=250, rounding up
    assert (s.function, s.expr, s.expected_default, s.recompute_op) == \
        ("merge_window", "((V+3) >> 2)", 150, "add")
    assert expr.parse(s.expr).evaluate(601) == 151


@pytest.mark.parametrize(("name", "function", "op", "v0"), [
    ("DIV_POW2", "divided", "shr", 8), ("MUL_POW2", "multiplied", "shl", 32)])
def test_ilog2_shift_is_log2_with_pow2_domain(catalog: Catalog, name: str, function: str, op: str,
                                              v0: int) -> None:
    knob = catalog.knob(name)
    (s,) = knob.sites
    assert (s.function, s.expr, s.recompute_op, s.expected_default) == \
        (function, "log2(V)", op, v0.bit_length() - 1)
    assert [c.kind for c in knob.domain.constraints] == ["pow2"]
    assert "ilog2" in knob.domain.constraints[0].reason
    allowed = knob.domain.allowed_values()
    assert allowed is not None and v0 in allowed and all(v & (v - 1) == 0 for v in allowed)
    assert all(0 <= expr.parse(s.expr).evaluate(v) < 32 for v in allowed)  # a valid shift count
