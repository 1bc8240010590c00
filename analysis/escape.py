"""The pow2 rule for a value that leaves its function: consumers the analysis cannot see.

The analysis follows IV only inside the function that holds the seed. When the value (or one
derived from it) is stored, passed to a call, returned or handed to a tail call, other
functions read it, and kernel code often sizes a ring with a constant and indexes it
elsewhere with ``head & (size - 1)``: PIPE_MIN_DEF_BUFFERS sizes the pipe ring in
alloc_pipe_info and pipe_write masks with it, so V=3 would corrupt pipe state although every
site of alloc_pipe_info is exact at 3. A power-of-two default is the sign of such a design,
so such a knob keeps powers of two unless the analysis saw the value die locally.
"""

from __future__ import annotations

import re

REASON = ("consumers beyond the function may use it as an index mask (x & (V-1)) or a shift "
          "amount, which only powers of two keep valid (like the default {v0})")


def pow2_default(v0: int) -> bool:
    """A default of 2 or more that is a power of two (1 says nothing about a design)."""
    return v0 >= 2 and v0 & (v0 - 1) == 0


def escape_constraint(v0: int, expr: str, constraints: list[tuple[str, str]],
                      how: str) -> tuple[str, str] | None:
    """``("pow2", reason)`` when V leaving its function (``how`` says where and how) must
    stay a power of two; None when the default is none, when V's own shape already bounds it
    (a shift count: ``1 << V`` and ilog2 values are powers of two for every V), or when what
    leaves is V scaled by a factor that makes it no power of two at the default (a time
    ``V*TICK_NSEC``: no consumer can rely on a mask of it)."""
    if not how or not pow2_default(v0) or "<< V" in expr or "log2" in expr:
        return None
    if any(kind in ("shift", "pow2") for kind, _ in constraints):
        return None
    if (m := re.fullmatch(r"-?\(?V\*(\d+)\)?", expr)) and not pow2_default(v0 * int(m[1])):
        return None
    return ("pow2", f"{how}; {REASON.format(v0=v0)}")
