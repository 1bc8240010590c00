"""The IV = f(V) expression language: parsing, evaluation, rendering, rejection."""

from __future__ import annotations

import pytest

from autotune.core.errors import BadInputError
from autotune.core.expr import parse, wrap


@pytest.mark.parametrize(("text", "v", "expected"), [
    ("V", 16, 16),
    ("V-1", 32, 31),
    ("V*8", 10, 80),
    ("-V", 4, (-4) & (2**64 - 1)),
    ("(V << 1) + 3", 5, 13),
    ("u32(-V)", 4, 2**32 - 4),
    ("s32(0xffffffff)", 0, -1),
    ("~V & 0xff", 0x0f, 0xf0),
    ("V*2 | 1 ^ 3", 4, 8 | (1 ^ 3)),
])
def test_evaluate(text: str, v: int, expected: int) -> None:
    width = "s64" if expected < 0 else "u64"
    assert parse(text).evaluate(v, width) == expected


def test_precedence_follows_c() -> None:
    assert parse("1 + 2 * 3").evaluate(0) == 7
    assert parse("1 << 2 + 1").evaluate(0) == 8


@pytest.mark.parametrize("bad", ["", "V +", "import os", "V / 2", "(V", "u32 V", "__import__('os')"])
def test_rejects_anything_outside_the_grammar(bad: str) -> None:
    with pytest.raises(BadInputError):
        parse(bad)


def test_shift_out_of_range_is_refused() -> None:
    with pytest.raises(BadInputError, match="shift"):
        parse("V << 70").evaluate(1)


def test_c_rendering_is_width_explicit() -> None:
    c = parse("u32(V*8)").to_c("val")
    assert "(__u32)" in c and "val" in c and "8LL" in c


def test_wrap_signed() -> None:
    assert wrap(0x80000000, "s32") == -(2**31)
    assert wrap(-1, "u16") == 0xFFFF
