"""The analyze coverage table's totals: source-present and compiled shares are both shown."""

from __future__ import annotations

from analysis.assemble import NOT_BUILT, Coverage
from autotune.cli.coverage_table import coverage_table


def test_title_counts_compiled_out_constants_apart() -> None:
    rows = [Coverage("A", "oracle-verified", 2, ""), Coverage("B", "oracle-verified", 1, ""),
            Coverage("C", "unsupported", 1, "reshaped"),
            Coverage("D", "unsupported", 0, f"no code for its uses (x.c:1 ...): {NOT_BUILT}"),
            Coverage("E", "absent", 0, "not defined in this kernel's source")]
    title = coverage_table(rows).title
    assert title.startswith("2/4 constants present in this kernel's source have sites (50%); "
                            "2/3 of those its config compiles (67%)")
    assert [r.compiled for r in rows] == [True, True, True, False, False]
