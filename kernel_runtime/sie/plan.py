"""What loading or setting an SIE knob would do, as text: ``--dry-run`` prints this.

Nothing here touches the kernel; addresses print as FUNCTION+OFFSET because the real
address is only known on the target (and /proc/kallsyms hides it from non-root).
"""

from __future__ import annotations

from autotune.core.catalog import Knob
from kernel_runtime.backend import Scope
from kernel_runtime.sie import module
from kernel_runtime.sie.render import render_site, render_span
from kernel_runtime.sie.runtime import Mode, pin_dir


def load_plan(knob: Knob, mode: Mode, *, with_source: bool = True) -> str:
    """The module calls, kprobes and BPF C that ``load`` would use for ``knob``."""
    where = pin_dir(knob.name)
    lines = [f"# load {knob.name} ({mode}): pins under {where}",
             f"insmod {module.NAME}.ko   # if not loaded"]
    for i, site in enumerate(knob.sites):
        rendered = render_site(knob, site, i)
        at = f"{site.function}+{site.probe_offset:#x}"
        for slot in module.slot_commands(0, site):  # address 0 stands for function+offset
            lines.append(f"echo '{slot.replace(' 0', f' <{at}>', 1)}' > {module.PARAMS}/slots")
        lines.append(f"kprobe {at} -> {rendered.template} as {rendered.object_name} "
                     f"(link {where}/link_site{i})")
        if site.guard_offset is not None:
            lines.append(f"kprobe {site.function}+{site.guard_offset:#x} -> sie_guard (path marker)")
        if site.save_offset is not None and site.synthesis == "save-recompute":
            lines.append(f"kprobe {site.function}+{site.save_offset:#x} -> sie_save (save probe)")
        if with_source:
            lines += [f"/* ---- site {i}: {rendered.object_name} ---- */", rendered.source]
    if mode != "immediate":
        span = render_span()
        for site in knob.sites:
            for s in site.safe_spans:
                lines.append(f"kprobe {s.function}+{s.start:#x} -> sie_span_enter; "
                             f"exit at {s.function}+{s.end:#x} -> sie_span_exit ({span.object_name})")
    lines.append(f"map update {where}/sie_ctl[0] = {{epoch 0, pending 0, mode {mode}}}  "
                 "# sie_live (disabled, global gate) is written by the programs only")
    return "\n".join(lines)


def set_plan(knob: Knob, value: int | None, scope: Scope) -> str:
    where = pin_dir(knob.name)
    action = f"= {{v {value}, epoch+1}}" if value is not None else "deleted (kernel's constant)"
    return (f"map update {where}/sie_values[{scope}] {action}\n"
            f"map update {where}/sie_ctl[0].epoch += 1\n"
            "# global mode: the value table is copied into generation pending+1, edited there, "
            "then sie_ctl[0].pending = that generation; a span probe switches to it when no task "
            "is inside a safe span")
