"""Can this kernel do SIE? Probe the running kernel for what the SIE backend needs.

SIE attaches kprobes (through the perf kprobe PMU, as libbpf does), loads our module,
compiles BPF CO-RE against the kernel's BTF and calls our module's kfunc from a kprobe
program. Each is probed from what the running kernel exposes, not from its version
number, so a distribution backport or a stripped config is judged correctly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

KPROBE_PMU = Path("/sys/bus/event_source/devices/kprobe")
MODULES = Path("/proc/modules")
MODULES_DISABLED = Path("/proc/sys/kernel/modules_disabled")
BTF_VMLINUX = Path("/sys/kernel/btf/vmlinux")
# The enumerator exists in the kernel's own BTF only when kprobe programs may call
# kfuncs registered by modules (BTF_KFUNC_HOOK_KPROBE, absent from 6.1).
KPROBE_KFUNC_HOOK = b"BTF_KFUNC_HOOK_KPROBE"


@dataclass(frozen=True)
class Features:
    """What the SIE backend needs, each with the reason when it is missing."""

    kprobes: bool
    modules: bool
    btf: bool
    kprobe_kfuncs: bool
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def sie_ready(self) -> bool:
        return not self.missing

    def explain(self) -> str:
        if self.sie_ready:
            return "kprobes, module loading, BTF and kprobe kfuncs all present"
        return "; ".join(f"{k}: {v}" for k, v in self.missing.items())

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _modules_reason() -> str | None:
    if not MODULES.exists():
        return "kernel built without module support (no /proc/modules)"
    try:
        if MODULES_DISABLED.read_text().strip() != "0":
            return "module loading disabled (kernel.modules_disabled=1 until reboot)"
    except OSError:
        return "cannot read kernel.modules_disabled"
    return None


def _kfunc_reason() -> str | None:
    try:
        blob = BTF_VMLINUX.read_bytes()
    except OSError:
        return "no BTF, so no kfuncs"
    if KPROBE_KFUNC_HOOK not in blob:
        return "kprobe programs cannot call module kfuncs here (6.1 lacks the hook; 6.12 has it)"
    return None


def probe_features() -> Features:
    """Probe the running kernel; cheap enough to call at every target open."""
    missing: dict[str, str] = {}
    if not KPROBE_PMU.exists():
        missing["kprobes"] = f"no kprobe PMU ({KPROBE_PMU}): kernel built without kprobes"
    reason = _modules_reason()
    if reason:
        missing["modules"] = reason
    if not BTF_VMLINUX.exists():
        missing["btf"] = f"no {BTF_VMLINUX}: kernel built without CONFIG_DEBUG_INFO_BTF"
    kfunc_reason = _kfunc_reason()
    if kfunc_reason and "btf" not in missing:
        missing["kprobe_kfuncs"] = kfunc_reason
    return Features(kprobes="kprobes" not in missing, modules="modules" not in missing,
                    btf="btf" not in missing, kprobe_kfuncs=kfunc_reason is None,
                    missing=missing)
