"""Knob selection by hit counts: search only knobs whose code the workload actually runs.

A target offers dozens of SIE knobs (the hand catalog plus every oracle-verified analysis
knob); a study has a handful of trials. Before the preflight the workload runs once with a
counter on every candidate site, and only knobs it hit enter the search, most hits first,
at most ``--max-knobs`` of them. A knob the workload never reaches cannot change its result,
so searching it only spends trials on noise. Knobs the user named with ``--knob`` and
non-SIE knobs (sysctls, which have no sites to count) always stay.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from autotune.core.catalog import Knob
from kernel_runtime.hitcount import Counts


def countable(knobs: list[Knob], named: set[str]) -> list[Knob]:
    """The knobs selection decides about: SIE knobs the user did not name."""
    return [k for k in knobs if k.backend == "sie" and k.name not in named]


def digest(knobs: list[Knob]) -> str:
    """What a stored selection was made from: the counted knobs, sites and domains included.
    A resumed study whose candidates differ (a re-analysed catalog moved a probe, a knob came
    or went) must count again: the stored counts and checks were of other sites."""
    text = json.dumps(sorted((k.model_dump(mode="json") for k in knobs), key=lambda d: d["name"]),
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Selection:
    """The outcome: knobs kept for the search, and a row per counted knob saying why."""

    kept: list[Knob]
    hits: dict[str, int] = field(default_factory=dict)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # knob -> sites that could not be counted
    sites: int = 0
    seconds: float = 0.0  # counting: arm, one workload run, read, remove
    check_seconds: float = 0.0  # loading the chosen knobs at their defaults for one run
    candidates: str = ""  # ``digest`` of the knobs it chose from

    def to_json(self) -> dict[str, Any]:
        return {"kept": [k.name for k in self.kept], "hits": self.hits, "candidates": self.candidates,
                "left_out": [list(x) for x in self.left_out], "notes": self.notes,
                "sites": self.sites, "seconds": round(self.seconds, 2),
                "check_seconds": round(self.check_seconds, 2)}


def select(knobs: list[Knob], counts: Counts, *, named: set[str], max_knobs: int) -> Selection:
    """Keep every knob hit at least once, most hits first (name breaks ties), at most
    ``max_knobs`` counted ones; named and non-SIE knobs stay whatever they scored."""
    counted = countable(knobs, named)
    counted_names = {k.name for k in counted}
    hit = sorted((k for k in counted if counts.hits.get(k.name, 0) > 0),
                 key=lambda k: (-counts.hits[k.name], k.name))
    chosen = {k.name for k in hit[:max_knobs]}
    out = Selection(kept=[k for k in knobs if k.name not in counted_names or k.name in chosen],
                    hits={k.name: counts.hits.get(k.name, 0) for k in counted},
                    notes=dict(counts.partial), sites=counts.sites)
    for rank, k in enumerate(hit[max_knobs:], start=max_knobs + 1):
        out.left_out.append((k.name, f"{counts.hits[k.name]} hits, rank {rank} > --max-knobs "
                                     f"{max_knobs}"))
    for k in counted:
        if k.name in counts.unattached:
            out.left_out.append((k.name, f"not counted: {counts.unattached[k.name]}"))
        elif counts.hits.get(k.name, 0) == 0:
            out.left_out.append((k.name, "the workload never ran its sites (0 hits)"))
    return out


def to_verify(selection: Selection) -> dict[str, int]:
    """Default value of every kept counted knob: loaded at it once before the search."""
    return {k.name: k.default for k in selection.kept
            if k.name in selection.hits and k.default is not None}


def drop(selection: Selection, rejected: dict[str, str]) -> None:
    """Take knobs the default-value run rejected out of the search, with the reason."""
    selection.kept = [k for k in selection.kept if k.name not in rejected]
    selection.left_out.extend((name, f"failed its check at the default value: {why}")
                              for name, why in rejected.items())


def from_stored(knobs: list[Knob], stored: dict[str, Any]) -> Selection:
    """A resumed study keeps its first selection, so every trial searches the same space."""
    kept = set(stored["kept"])
    counted = {n for n in stored["hits"]}
    return Selection(kept=[k for k in knobs if k.name not in counted or k.name in kept],
                     hits=dict(stored["hits"]),
                     left_out=[(n, why) for n, why in stored["left_out"]],
                     notes=dict(stored.get("notes", {})), sites=int(stored.get("sites", 0)),
                     seconds=float(stored.get("seconds", 0.0)),
                     check_seconds=float(stored.get("check_seconds", 0.0)),
                     candidates=str(stored.get("candidates", "")))


def table(selection: Selection, max_knobs: int) -> Table:
    """A row per knob the workload hit, kept ones first; the rest summed up in the caption."""
    kept = {k.name for k in selection.kept}
    why = dict(selection.left_out)
    hit = [(n, h) for n, h in selection.hits.items() if h > 0]
    t = Table(title=f"knob selection: {selection.sites} site(s) counted during one workload run "
                    f"({selection.seconds:.1f} s), at most {max_knobs} kept, checked at their "
                    f"defaults ({selection.check_seconds:.1f} s)")
    t.add_column("knob", no_wrap=True)
    t.add_column("hits", justify="right")
    t.add_column("searched")
    t.add_column("why / note", overflow="fold")
    for name, hits in sorted(hit, key=lambda x: (x[0] not in kept, -x[1], x[0])):
        note = why.get(name, "")
        if name in selection.notes:
            note = f"{note}; " if note else ""
            note += f"partly counted: {selection.notes[name]}"
        t.add_row(name, str(hits), "yes" if name in kept else "no", note)
    zero = sorted(n for n, h in selection.hits.items() if h == 0 and n not in kept)
    if zero:
        t.caption = f"not searched, 0 hits or not countable ({len(zero)}): {', '.join(zero)}"
    return t
