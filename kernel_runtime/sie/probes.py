"""Which probe offsets the running kernel takes, and why it refuses the others.

Seen in the lab: kprobes at ``sbitmap_queue_resize+0xc`` (SBQ_WAKE_BATCH) and
``io_recv_finish+0x1e0`` (MULTISHOT_MAX_RETRY) fail with EINVAL at instructions that are
fine in themselves. Neither function has an ftrace site (no ``__fentry__`` call), and with
``CONFIG_KPROBE_EVENTS_ON_NOTRACE`` off the kprobe *events* layer — which perf's kprobe PMU,
hence libbpf, goes through — refuses every address in such a function
(``kernel/trace/trace_kprobe.c``: ``within_notrace_func``). No offset in the function helps.
The other EINVAL causes are per address (``kernel/kprobes.c``: the kprobe blacklist, a jump
label or static call site, a BUG/WARN ``ud2``; ``arch/x86/kernel/kprobes/core.c``: an
alternative, an instruction that cannot be copied out and single-stepped; EILSEQ: not an
instruction boundary), and there an equivalent offset of the same site does help.

A trial registration through tracefs ``kprobe_events`` runs the very same checks without
arming anything (an event is registered disabled), so a knob no site offset of which the
kernel takes is reported unusable before an apply, never half-attached.
"""

from __future__ import annotations

import errno
from pathlib import Path

from autotune.core.catalog import Site
from kernel_runtime import tracefs

_BLACKLIST = Path("/sys/kernel/debug/kprobes/blacklist")
_TRIAL = "autotune_try/offset"


def offsets_to_try(site: Site) -> list[int]:
    """The catalog's probe offset first, then its equivalent ones in the catalog's order."""
    return list(dict.fromkeys([site.probe_offset, *site.probe_offsets]))


def _traceable() -> frozenset[str] | None:
    """Functions with an ftrace site (None: tracefs not readable here)."""
    t = tracefs.root()
    try:
        text = (t / "available_filter_functions").read_text() if t else None
    except OSError:
        text = None
    return None if text is None else frozenset(line.split()[0] for line in text.splitlines() if line)


def _blacklisted(address: int) -> bool:
    try:
        lines = _BLACKLIST.read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        lo, _, hi = line.split()[0].partition("-")
        if hi and int(lo, 16) <= address < int(hi, 16):
            return True
    return False


def notrace(function: str) -> bool:
    """True when the kernel lists ftrace sites and ``function`` has none."""
    names = _traceable()
    return names is not None and function not in names


def why_refused(function: str, address: int) -> str:
    """The most precise reason the running kernel gives for refusing a kprobe there."""
    if notrace(function):
        return (f"{function} has no ftrace site (notrace) and kprobe events refuse every "
                "address in such a function (CONFIG_KPROBE_EVENTS_ON_NOTRACE is off)")
    if _blacklisted(address):
        return f"{address:#x} is in the kprobe blacklist (/sys/kernel/debug/kprobes/blacklist)"
    return ("the kernel refused this address (EINVAL/EILSEQ: a jump label, static call, "
            "alternative, BUG site, or an instruction kprobes cannot single-step)")


def accepts(site: Site, offset: int) -> bool | None:
    """Would the kernel take a kprobe at ``function+offset``? None: cannot tell here."""
    t = tracefs.root()
    if t is None:
        return None
    err = tracefs.command(t / "kprobe_events", f"p:{_TRIAL} {tracefs.spec(site, offset)}\n")
    if err == 0:
        tracefs.command(t / "kprobe_events", f"-:{_TRIAL}\n")
        return True
    return False if err in (errno.EINVAL, errno.EILSEQ) else None


def unusable_reason(site: Site, base: int) -> str | None:
    """Why no equivalent offset of ``site`` (at function address ``base``) can be probed."""
    offsets = offsets_to_try(site)
    if any(accepts(site, o) is not False for o in offsets):  # stops at the first taken
        return None
    return (f"site {site.function}+{site.probe_offset:#x}: the kernel refuses a kprobe at all "
            f"{len(offsets)} equivalent offset(s): {why_refused(site.function, base + offsets[0])}")
