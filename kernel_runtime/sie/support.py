"""A cheap probe: can the running kernel do SIE at all?

Run by ``local_controller()`` on every start, so it only reads a few files: a missing
feature yields a one-line reason, never an exception.
"""

from __future__ import annotations

from pathlib import Path

KPROBE_PMU = Path("/sys/bus/event_source/devices/kprobe")
MODULES = Path("/proc/modules")
BTF = Path("/sys/kernel/btf/vmlinux")
# Present in a kernel's BTF only where kprobe programs may call kfuncs (6.x, not 6.1).
KPROBE_KFUNC_HOOK = b"BTF_KFUNC_HOOK_KPROBE"


def unsupported_reason() -> str | None:
    """None when kprobes, modules, BTF and kprobe kfuncs all exist; else what is missing."""
    if not KPROBE_PMU.exists():
        return "kernel has no kprobes (no kprobe PMU in /sys/bus/event_source)"
    if not MODULES.exists():
        return "kernel cannot load modules (no /proc/modules)"
    try:
        btf = BTF.read_bytes()
    except OSError:
        return f"kernel has no BTF ({BTF} missing)"
    if KPROBE_KFUNC_HOOK not in btf:
        return "kernel lets no kprobe program call module kfuncs (6.1 and older)"
    return None
