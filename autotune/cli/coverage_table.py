"""The coverage table ``autotune analyze`` ends with: one row per seed, totals last."""

from __future__ import annotations

from collections import Counter
from typing import Any

_STYLE = {"oracle-verified": "green", "found": "yellow", "unsupported": "red", "absent": "dim"}


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def coverage_table(rows: list[Any]) -> Any:
    """A rich Table of ``analysis.assemble.Coverage`` rows (status, sites, detail)."""
    from rich.markup import escape
    from rich.table import Table

    counts = Counter(r.status for r in rows)
    present = len(rows) - counts["absent"]
    compiled = sum(1 for r in rows if r.compiled)
    with_sites = counts["found"] + counts["oracle-verified"]
    title = (f"{with_sites}/{present} constants present in this kernel's source have sites "
             f"({_share(with_sites, present)}); {with_sites}/{compiled} of those its config compiles "
             f"({_share(with_sites, compiled)}) ({counts['oracle-verified']} oracle-verified, "
             f"{counts['unsupported']} unsupported, {counts['absent']} absent)")
    table = Table(title=title, title_justify="left")
    table.add_column("constant")
    table.add_column("status")
    table.add_column("sites", justify="right")
    table.add_column("detail / reason", overflow="fold")
    for r in sorted(rows, key=lambda r: (list(_STYLE).index(r.status), r.name)):
        # details quote instructions ('[rax + rax*4]') that rich would read as markup
        table.add_row(r.name, f"[{_STYLE[r.status]}]{r.status}[/]", str(r.sites), escape(r.detail))
    return table
