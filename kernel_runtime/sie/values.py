"""A loaded knob's values and control word (user space writes them) and its live state
(the BPF programs write it, user space only reads it).

Why the split: a value change rewrites the whole ``sie_ctl`` word, so anything a BPF
program decided in that word between user space's read and write was undone. What BPF
decides — ``disabled`` after a self-check mismatch, and in global mode the live generation
and the count of tasks inside a safe span — lives in ``sie_live``, changed only by BPF
atomics.

Global mode double-buffers by generation: a change copies the newest value table into a
fresh generation, edits it there (invisible to every probe) and then publishes its number
in ``sie_ctl.pending``. A span probe moves the live generation to it with one
compare-and-swap, only when no task is inside a safe span (``templates/span.bpf.c``); it
is never forced. A published generation is never edited again, so a probe that promotes an
older published one races with nothing: the newer one follows at the next quiet moment.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from autotune.core.errors import AutotuneError
from kernel_runtime.backend import GLOBAL, Scope
from kernel_runtime.sie.libbpf import PinnedMap
from kernel_runtime.sie.pins import fresh, pinned

_KEY, _VAL, _CTL, _LIVE = "<IIQ", "<qQ", "<QIIQ", "<QQQQ"
_ZERO = struct.pack("<I", 0)
_SCOPE_KIND = {"global": 0, "cgroup": 1, "pid": 2}
MODES: dict[str, int] = {"immediate": 0, "per-task": 1, "global": 2}  # SIE_MODE_*
GLOBAL_MODE = MODES["global"]
MAX_ENTRIES = 1024  # max_entries of sie_values in sie_common.bpf.h


@dataclass(frozen=True)
class Control:
    """``sie_ctl``: written by user space only."""

    epoch: int
    pending: int  # global mode: the newest published generation
    mode: int
    pending_ns: int  # when it was published (CLOCK_MONOTONIC, as bpf_ktime_get_ns)

    def pack(self) -> bytes:
        return struct.pack(_CTL, self.epoch, self.pending, self.mode, self.pending_ns)


@dataclass(frozen=True)
class Live:
    """``sie_live``: written by BPF only (atomics)."""

    gate: int
    disabled: int
    switched_ns: int
    switches: int

    @property
    def generation(self) -> int:
        return self.gate >> 32

    @property
    def inside(self) -> int:
        """Tasks inside a safe span of the knob (global mode)."""
        return self.gate & 0xFFFFFFFF


def initial_control(mode: str) -> bytes:
    return Control(0, 0, MODES[mode], 0).pack()


def scope_key(scope: Scope, gen: int = 0) -> bytes:
    return struct.pack(_KEY, _SCOPE_KIND[scope.kind], gen, scope.ident if scope.kind != "global" else 0)


def control(knob: str) -> Control:
    fresh(knob)
    return _control(knob)


def live(knob: str) -> Live:
    fresh(knob)
    return _live(knob)


def _control(knob: str) -> Control:
    raw = pinned(knob, "sie_ctl").lookup(_ZERO, struct.calcsize(_CTL))
    assert raw is not None
    return Control(*struct.unpack(_CTL, raw))


def _live(knob: str) -> Live:
    raw = pinned(knob, "sie_live").lookup(_ZERO, struct.calcsize(_LIVE))
    assert raw is not None
    return Live(*struct.unpack(_LIVE, raw))


def _entries(values: PinnedMap) -> dict[bytes, bytes]:
    size = struct.calcsize(_VAL)
    out: dict[bytes, bytes] = {}
    for key in values.keys(struct.calcsize(_KEY)):
        raw = values.lookup(key, size)
        if raw is not None:
            out[key] = raw
    return out


def _gen(key: bytes) -> int:
    return int(struct.unpack(_KEY, key)[1])


def set_value(knob: str, value: int | None, scope: Scope, *, restoring: bool = False) -> int:
    """Make ``value`` live for ``scope`` (None: back to the kernel's constant); bump the epoch.

    A knob that disabled itself takes no new value, but a restore still goes through: it
    writes nothing anyway, and refusing it would leave the journal session open. In global
    mode the value is published, and takes effect when no task is inside a safe span."""
    fresh(knob)
    ctl, state = _control(knob), _live(knob)
    if state.disabled and not restoring:
        raise AutotuneError(f"knob {knob!r} disabled itself: a site did not hold its default "
                            "value (wrong catalog for this kernel?); see 'autotune knob status'")
    values = pinned(knob, "sie_values")
    epoch = ctl.epoch + 1
    if ctl.mode != GLOBAL_MODE:
        if value is None:
            values.delete(scope_key(scope))
        else:
            values.update(scope_key(scope), struct.pack(_VAL, value, epoch))
        pinned(knob, "sie_ctl").update(_ZERO, Control(epoch, 0, ctl.mode, 0).pack())
        return epoch
    _publish(knob, values, ctl, state, value, scope, epoch)
    return epoch


def _publish(knob: str, values: PinnedMap, ctl: Control, state: Live, value: int | None,
             scope: Scope, epoch: int) -> None:
    newest = max(ctl.pending, state.generation)
    gen = newest + 1
    entries = _entries(values)
    table = {key[:4] + key[8:]: raw for key, raw in entries.items() if _gen(key) == newest}
    mine = scope_key(scope)
    mine = mine[:4] + mine[8:]
    if value is None:
        table.pop(mine, None)
    else:
        table[mine] = struct.pack(_VAL, value, epoch)
    # dead: older than the live generation; junk: an unpublished table a failed call left
    for key in [k for k in entries if _gen(k) < state.generation or _gen(k) > newest]:
        values.delete(key)
        del entries[key]
    if len(entries) + len(table) > MAX_ENTRIES:
        waiting = newest - state.generation
        raise AutotuneError(f"knob {knob!r}: {waiting} value changes already wait behind "
                            f"{state.inside} task(s) inside a safe span; nothing published. "
                            "Retry when they leave, or unload the knob")
    for short, raw in table.items():
        values.update(short[:4] + struct.pack("<I", gen) + short[4:], raw)
    pinned(knob, "sie_ctl").update(_ZERO, Control(epoch, gen, ctl.mode, time.monotonic_ns()).pack())


def get_value(knob: str, scope: Scope) -> int | None:
    """The value last asked for ``scope`` (global mode: the newest, perhaps still pending)."""
    ctl = control(knob)
    gen = max(ctl.pending, live(knob).generation) if ctl.mode == GLOBAL_MODE else 0
    return value_in(knob, scope, gen)


def value_in(knob: str, scope: Scope, gen: int) -> int | None:
    raw = pinned(knob, "sie_values").lookup(scope_key(scope, gen), struct.calcsize(_VAL))
    return None if raw is None else int(struct.unpack(_VAL, raw)[0])


def live_value(knob: str, scope: Scope, state: Live) -> int | None:
    """The value in effect for ``scope`` (global mode: the live generation's)."""
    gen = state.generation if control(knob).mode == GLOBAL_MODE else 0
    return value_in(knob, scope, gen)


def transition_counters(knob: str, state: Live) -> dict[str, int]:
    """The epoch; in global mode also the live generation, the tasks inside a safe span and
    a pending change (generation, age, global value; ``pending.unset`` when it returns to
    the kernel's constant), which waits for them and is never forced."""
    ctl = control(knob)
    out = {"epoch": ctl.epoch}
    if ctl.mode != GLOBAL_MODE:
        return out
    out |= {"generation": state.generation, "inside": state.inside, "switches": state.switches}
    if ctl.pending > state.generation:
        out |= {"pending.generation": ctl.pending,
                "pending.since_ms": (time.monotonic_ns() - ctl.pending_ns) // 1_000_000}
        value = value_in(knob, GLOBAL, ctl.pending)
        out |= {"pending.unset": 1} if value is None else {"pending.value": value}
    return out
