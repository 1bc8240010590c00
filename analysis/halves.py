"""Two shapes of an oracle change no affine or divided fit explains: a merged ``movabs`` and
a power of two.

GCC merges the stores of two adjacent 32-bit constants into one ``movabs $imm64`` and a
64-bit store: tcp_sk_init writes ``sysctl_tcp_plb_cong_thresh = (1 << TCP_PLB_SCALE) / 2``
beside another sysctl's constant. The 64-bit immediate is no function of V a fit finds; its
varying half is, and the other half is the same constant in every build. The site then
rewrites the whole register, the constant half kept as it is.

``1 << TCP_PLB_SCALE`` is such a half: a power of two whose exponent follows V. C computes
it in ``int``, so V is kept where the shift stays below bit 31 (``1 << 31`` is negative
there, and the expression would not say so).
"""

from __future__ import annotations

import re

_M32 = 0xFFFF_FFFF
INT_BITS = 31  # value bits of C's int: 1 << 31 is already negative


def split(imms: tuple[int, ...]) -> tuple[str, int, tuple[int, ...]] | None:
    """("high" or "low", the constant half, the other half in each build) when exactly one
    32-bit half of a 64-bit immediate changes between the builds."""
    imms = tuple(i & ((1 << 64) - 1) for i in imms)
    highs = tuple(i >> 32 for i in imms)
    lows = tuple(i & _M32 for i in imms)
    if len(set(lows)) == 1 and len(set(highs)) > 1:
        return "high", lows[0], highs
    if len(set(highs)) == 1 and len(set(lows)) > 1:
        return "low", highs[0], lows
    return None


def compose(which: str, const: int, half: str) -> str:
    """The whole immediate from its varying half's expression (kept to 32 bits, so a negative
    half cannot spill into the other) and the constant half."""
    if which == "high":
        return f"(u32({half}) << 32) | {const}"
    return f"{const << 32} | u32({half})"


def inner(text: str) -> str:
    """The varying half's expression of a ``compose``d one (else ``text`` itself)."""
    m = re.fullmatch(r"\(u32\((.+)\) << 32\) \| \d+|\d+ \| u32\((.+)\)", text)
    return text if m is None else m.group(1) or m.group(2)


def power(values: tuple[int, ...], imms: tuple[int, ...]) -> str | None:
    """``1 << (V+c)`` (or ``(1 << V)/2**-c`` for c < 0, which C gives as 0, never a negative
    shift, at small V) when every immediate is 2**(V+c) for one c; else ``K << V``."""
    if any(v < 0 for v in values):
        return None
    if any(i <= 0 or i & (i - 1) for i in imms):
        return _scaled(values, imms)
    offsets = {i.bit_length() - 1 - v for v, i in zip(values, imms, strict=True)}
    if len(offsets) != 1:
        return None
    c = offsets.pop()
    return "1 << V" if c == 0 else f"1 << (V+{c})" if c > 0 else f"(1 << V)/{1 << -c}"


def _scaled(values: tuple[int, ...], imms: tuple[int, ...]) -> str | None:
    """``K << V`` for one odd K > 1: tcp_select_initial_window's default clamp
    ``U16_MAX << TCP_MAX_WSCALE``. K comes from the smallest V; a value shifted past 32 bits
    shows only its low 32 (GCC truncates the int), and must agree there too."""
    lo = min(range(len(values)), key=lambda j: values[j])
    v, i = values[lo], imms[lo] & _M32
    if i == 0 or i % (1 << v):
        return None
    k = i >> v
    if k <= 1 or k % 2 == 0:
        return None
    if any((k << w) & _M32 != j & _M32 for w, j in zip(values, imms, strict=True)):
        return None
    return f"{k} << V"


def power_bound(text: str) -> int | None:
    """The largest V at which a ``power`` form's shift stays inside C's int (None: no such
    form in ``text``): ``K << (V+c)`` is non-negative while V + c + bits(K) <= 31."""
    m = re.search(r"(?<!\d)(\d+) << \(?V(\+\d+)?", text)
    if m is None:
        return None
    return INT_BITS - int(m.group(1)).bit_length() - (int(m.group(2)) if m.group(2) else 0)
