"""Choose the kernel to tune: ``host``, ``lab`` or ``auto``.

``auto`` takes the host only when its running kernel can do SIE (kprobes, module loading,
BTF, kprobe kfuncs: ``kernel_runtime.features``); otherwise the lab VM, whose Debian 6.12
kernel can. Either way it says which and why, because a study's numbers mean different
things on each (the lab is emulated: compare ratios only).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from autotune.core.errors import BadInputError
from kernel_runtime.features import probe_features
from kernel_runtime.sie.knobset import DEFAULT_CHOICE, UNVERIFIED_FLAG, CatalogChoice
from kernel_runtime.target import Target

TARGET_NAMES = ("auto", "host", "lab")


def choose_target(name: str) -> tuple[str, str]:
    """Resolve ``name`` to ``host`` or ``lab`` and the reason for the choice."""
    if name not in TARGET_NAMES:
        raise BadInputError(f"unknown target {name!r}; choose from {', '.join(TARGET_NAMES)}")
    if name != "auto":
        return name, "chosen with --target"
    features = probe_features()
    if features.sie_ready:
        return "host", f"the host kernel can do SIE ({features.explain()})"
    return "lab", f"the host kernel cannot do SIE ({features.explain()})"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def open_target(name: str, *, say: Callable[[str], None] = _stderr,
                progress: Callable[[str], None] = lambda _: None,
                catalog: CatalogChoice = DEFAULT_CHOICE) -> Target:
    """Open the target ``name`` ("host", "lab" or "auto"); the caller must ``close`` it.

    ``catalog`` picks the SIE analysis catalog (default: the cached oracle catalog of the
    target's build-id); one made for another build is refused before anything is written.
    """
    chosen, why = choose_target(name)
    say(f"target: {chosen} ({why})")
    if catalog.allow_unverified:
        say(f"WARNING: {UNVERIFIED_FLAG}: SIE sites the oracle did not verify may be loaded")
    if chosen == "host":
        from kernel_runtime.host import HostTarget

        target: Target = HostTarget(catalog=catalog)
    else:
        from kernel_runtime.lab.target import LabTarget

        target = LabTarget(progress=progress, catalog=catalog)
    say(describe_catalogs(target))
    return target


def describe_catalogs(target: Target) -> str:
    """One line naming the SIE catalogs in use, for the start of a run."""
    found = getattr(target, "knob_set", None)
    if found is None:
        return "SIE catalogs: none"
    parts = [f"hand ({len(found.hand_knobs())} knobs)"] if found.hand else []
    if found.analysis_path is not None:
        parts.append(f"{found.analysis_origin} {found.analysis_path} ({len(found.extras())} more knobs)")
    return "SIE catalogs: " + (", ".join(parts) or "none") + "".join(f"; {n}" for n in found.notes)
