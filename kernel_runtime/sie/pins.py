"""Where a loaded knob lives in bpffs, and its pinned maps opened once per process.

Everything of a knob is pinned under ``/sys/fs/bpf/autotune/<KNOB>/`` (links and maps),
so a knob loaded by one process (``autotune knob load``) is changed by another (``knob
set``) with a plain map update. A value change is then a stat and a few bpf() calls: no
path parsing, no open.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

from autotune.core.errors import EnvironmentProblem
from kernel_runtime.sie.libbpf import PinnedMap

BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "autotune"


@functools.cache
def pin_dir(knob: str) -> Path:
    """The knob's bpffs directory; analysis names a derived constant by its expression
    (``ca->delay_min >> 3``) or a user seed by its place (``net/ipv4/tcp_input.c:921``), so
    other characters are replaced and the name's hash added (bpffs refuses '.' in a name).
    Cached: every value change stats the control map (pathlib costs ~0.1 ms in the TCG lab)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", knob)
    if safe != knob:
        safe += "-" + hashlib.sha256(knob.encode()).hexdigest()[:8]
    return PIN_ROOT / safe


@functools.cache
def _control_path(knob: str) -> str:
    return str(pin_dir(knob) / "sie_ctl")


def is_loaded(knob: str) -> bool:
    return os.path.exists(_control_path(knob))


_open: dict[tuple[str, str], PinnedMap] = {}
_pinned_as: dict[str, int] = {}


def fresh(knob: str) -> None:
    """One stat per operation: drop cached fds when another process re-pinned the knob
    (its control map's inode changed) or unloaded it."""
    try:
        ino = os.stat(_control_path(knob)).st_ino
    except OSError as e:
        forget(knob)
        raise EnvironmentProblem(f"knob {knob!r} is not loaded ({e.strerror}): "
                                 f"run 'autotune knob load {knob}'") from e
    if _pinned_as.get(knob) != ino:
        forget(knob)
        _pinned_as[knob] = ino


def pinned(knob: str, name: str) -> PinnedMap:
    """A pinned map of a loaded knob (call ``fresh`` first in each operation)."""
    found = _open.get((knob, name))
    if found is None:
        found = _open[(knob, name)] = PinnedMap(pin_dir(knob) / name)
    return found


def forget(knob: str) -> None:
    _pinned_as.pop(knob, None)
    for key in [k for k in _open if k[0] == knob]:
        _open.pop(key).close()
