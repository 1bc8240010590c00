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


@pytest.mark.parametrize("bad", ["", "V +", "import os", "(V", "V / V", "u32 V", "__import__('os')"])
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


@pytest.mark.parametrize(("text", "v", "expected"), [
    ("log2(V)", 1, 0),
    ("log2(V)", 8, 3),
    ("log2(V)", 1 << 40, 40),
    ("log2(V)", 12, 3),  # the kernel's ilog2 rounds down
    ("log2(V)-1", 16, 3),
    ("log2(V*2)+1", 256, 10),
])
def test_log2_is_the_kernels_ilog2(text: str, v: int, expected: int) -> None:
    assert parse(text).evaluate(v) == expected


def test_log2_of_non_positive_is_refused() -> None:
    with pytest.raises(BadInputError, match="log2 of 0"):
        parse("log2(V)").evaluate(0)
    with pytest.raises(BadInputError, match="parentheses"):
        parse("log2 V")


def test_log2_renders_without_a_clz_builtin() -> None:
    c = parse("log2(V)+1").to_c("val")
    assert "__builtin" not in c and "val" in c and ">= 2ULL" in c and f">= {1 << 63}ULL" in c


def test_c_rendering_agrees_with_evaluate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The rendered C, compiled by the real gcc, computes what ``evaluate`` computes."""
    import subprocess

    texts = ["log2(V)", "log2(V)+2", "u32(V*8-1)", "(V+3) >> 2", "-(log2(V))"]
    values = [1, 2, 3, 8, 600, 4096, 1 << 31, 1 << 40]
    body = "\n".join(f'printf("%lld\\n", (long long){parse(t).to_c("v")});' for t in texts)
    src = tmp_path / "e.c"
    src.write_text("#include <stdio.h>\n#include <stdlib.h>\ntypedef long long __s64;\n"
                   "typedef unsigned long long __u64;\ntypedef unsigned int __u32;\n"
                   "int main(int c, char **a) { __s64 v = atoll(a[1]);\n" + body + "\nreturn 0; }\n")
    subprocess.run(["gcc", "-O2", "-o", str(tmp_path / "e"), str(src)], check=True)
    for v in values:
        out = subprocess.run([str(tmp_path / "e"), str(v)], capture_output=True, text=True,
                             check=True).stdout.split()
        assert [int(x) for x in out] == [parse(t).evaluate(v, "s64") for t in texts], v


def test_division_by_a_literal() -> None:
    # BFQ_MIN_TT / NSEC_PER_USEC: the compiler folds it to V/1000 (truncating)
    assert parse("V/1000").evaluate(2_000_999) == 2000
    assert parse("V/1000000-8").evaluate(4_000_001, "s64") == -4
    assert parse("V*5/256").evaluate(2048) == 40
    assert "/ 1000ULL" in parse("V/1000").to_c("v")
    for bad in ("V/0", "V/V", "V/(2)"):
        with pytest.raises(BadInputError, match="positive integer literal"):
            parse(bad)
