"""Attach and detach one SIE knob: pinned programs, module slots, counters.

Everything lives pinned under ``/sys/fs/bpf/autotune/<KNOB>/`` (``pins.py``) and survives
until ``unload`` removes the pins; values and the control word are ``values.py``'s.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from autotune.core.catalog import Knob, SafeSpan, Site
from autotune.core.errors import BadInputError, EnvironmentProblem
from kernel_runtime.sie import module, probes, values
from kernel_runtime.sie.libbpf import BpfObject, KprobeRefused, PinnedMap, possible_cpus
from kernel_runtime.sie.pins import BPFFS, PIN_ROOT, forget, fresh, pin_dir, pinned
from kernel_runtime.sie.render import Rendered, render_site, render_span

KPROBE_LIST = Path("/sys/kernel/debug/kprobes/list")
Mode = Literal["immediate", "per-task", "global"]
MODES = values.MODES
_COUNT = "<QQQQ"
COUNTERS = ("hits", "applied", "mismatches", "refused")

ObjectFor = Callable[[Rendered], Path]


@dataclass(frozen=True)
class Kallsyms:
    """Function start addresses of the running kernel and its loaded modules (root sees real
    addresses); a module's symbols are kept apart so a site names the copy it means."""

    table: dict[str, list[tuple[int, str]]]

    @classmethod
    def read(cls, path: Path = Path("/proc/kallsyms")) -> Kallsyms:
        table: dict[str, list[tuple[int, str]]] = {}
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1] in "tTwW":
                owner = parts[3].strip("[]") if len(parts) > 3 else ""
                table.setdefault(parts[2], []).append((int(parts[0], 16), owner))
        return cls(table)

    def address(self, function: str, module: str | None = None) -> int:
        owner = module_name(module) if module else ""
        found = [a for a, m in self.table.get(function, []) if m == owner]
        if len(found) != 1 or found[0] == 0:
            where = f"module {owner}" if owner else "vmlinux"
            why = f"not in /proc/kallsyms ({where})" if not found else (
                "hidden (addresses read as 0: run as root)" if found[0] == 0 else
                f"defined {len(found)} times in {where}")
            raise EnvironmentProblem(f"function {function!r} {why}: the catalog does not fit this kernel")
        return found[0]

    def starts(self) -> list[int]:
        return [a for entries in self.table.values() for a, _ in entries]


def module_name(name: str) -> str:
    """/proc/modules spells every module with underscores (``dm-mod`` loads as ``dm_mod``)."""
    return name.replace("-", "_")


def loaded_modules(path: Path = Path("/proc/modules")) -> set[str]:
    try:
        return {line.split()[0] for line in path.read_text().splitlines() if line.strip()}
    except OSError:
        return set()


_SITE_LINK = re.compile(r"link_site(\d+)(?:_at(0x[0-9a-f]+))?")


def attached_offsets(knob: Knob) -> dict[int, int]:
    """Site index -> the probe offset its link is attached at, for sites attached at load
    (``link_siteN``: the catalog's probe_offset; ``link_siteN_at0x..``: an equivalent one)."""
    out: dict[int, int] = {}
    for p in pin_dir(knob.name).glob("link_site*"):
        m = _SITE_LINK.fullmatch(p.name)
        if m and int(m[1]) < len(knob.sites):
            out[int(m[1])] = int(m[2], 16) if m[2] else knob.sites[int(m[1])].probe_offset
    return out


def attached_sites(knob: str) -> set[int]:
    """Indices of the sites whose probe link is pinned (the rest were skipped at load)."""
    return {int(m[1]) for p in pin_dir(knob).glob("link_site*")
            if (m := _SITE_LINK.fullmatch(p.name))}


def attach(knob: Knob, *, mode: Mode, object_for: ObjectFor, syms: Kallsyms,
           skip: frozenset[int] = frozenset()) -> None:
    """Load and attach every site but those in ``skip`` (their module is not loaded), and the
    safe spans in per-task and global mode; nothing applies yet. Site indices stay the
    catalog's, so counters and object names do not depend on which modules are loaded.

    A site is attached at the first of its equivalent probe offsets the kernel accepts
    (``probes.offsets_to_try``); when it accepts none, nothing of the knob stays attached."""
    if not BPFFS.is_mount():
        raise EnvironmentProblem(f"bpffs not mounted: run 'mount -t bpf bpf {BPFFS}'")
    where = pin_dir(knob.name)
    where.mkdir(parents=True, exist_ok=True)
    try:
        for i in _attach_order(knob.sites):
            if i in skip:
                continue
            site = knob.sites[i]
            obj = BpfObject(object_for(render_site(knob, site, i)), where)
            try:
                _attach_site(obj, site, i, syms, where)
                if site.guard_offset is not None:
                    obj.attach_kprobe("sie_guard", site.function, site.guard_offset,
                                      where / f"link_site{i}_guard")
                if site.synthesis == "save-recompute":
                    assert site.save_offset is not None
                    obj.attach_kprobe("sie_save", site.function, site.save_offset,
                                      where / f"link_site{i}_save")
            finally:
                obj.close()
        if mode != "immediate":
            _attach_spans([s for i, s in enumerate(knob.sites) if i not in skip], knob.name,
                          object_for, syms, where)
        fresh(knob.name)
        pinned(knob.name, "sie_ctl").update(struct.pack("<I", 0), values.initial_control(mode))
    except BaseException:
        detach(knob, syms)
        raise


def _attach_order(sites: list[Site]) -> list[int]:
    """Site indices in attach order: a site whose write probe sits where another site saves
    its input (a multiply chain's result is the next shift's input) comes after it, because
    kprobes at one address run newest first (kernel/kprobes.c add_new_kprobe): the rewrite
    must precede the save that reads it."""
    saves = {(s.function, s.save_offset) for s in sites if s.save_offset is not None}
    return sorted(range(len(sites)), key=lambda i: (sites[i].function,
                                                    sites[i].probe_offset) in saves)


def _attach_site(obj: BpfObject, site: Site, i: int, syms: Kallsyms, where: Path) -> None:
    """The site's program at the first equivalent offset the kernel takes; its module slot
    is registered for exactly that probe address."""
    base = syms.address(site.function, site.module)
    refusals: list[str] = []
    for offset in probes.offsets_to_try(site):
        link = where / (f"link_site{i}" if offset == site.probe_offset else f"link_site{i}_at{offset:#x}")
        module.register(base + offset, site)
        try:
            obj.attach_kprobe("sie_site", site.function, offset, link)
        except BaseException as e:
            module.unregister(base + offset, site)
            if not isinstance(e, KprobeRefused):
                raise
            refusals.append(f"+{offset:#x}: {probes.why_refused(site.function, base + offset)}")
            continue
        return
    raise EnvironmentProblem(f"site {site.function}+{site.probe_offset:#x}: the kernel refused a kprobe "
                             f"at every equivalent offset ({'; '.join(refusals)})")


def _attach_spans(sites: list[Site], name: str, object_for: ObjectFor, syms: Kallsyms,
                  where: Path) -> None:
    spans: list[tuple[SafeSpan, str | None]] = []
    for site in sites:
        spans.extend((s, site.module) for s in site.safe_spans if (s, site.module) not in spans)
    if not spans:
        raise BadInputError(f"knob {name!r} has no safe spans: load it with --mode immediate")
    for j, (span, owner) in enumerate(spans):
        obj = BpfObject(object_for(render_span()), where)
        try:
            obj.attach_kprobe("sie_span_enter", span.function, span.start, where / f"link_span{j}_in")
            if _ends_function(span, owner, syms):
                obj.attach_kprobe("sie_span_exit", span.function, 0, where / f"link_span{j}_out",
                                  retprobe=True)
            else:
                obj.attach_kprobe("sie_span_exit", span.function, span.end, where / f"link_span{j}_out")
        finally:
            obj.close()


def _ends_function(span: SafeSpan, owner: str | None, syms: Kallsyms) -> bool:
    """A span ending at the function's end ends at every return: exit by kretprobe.

    kallsyms has no sizes; the next symbol (the next function's 16-byte ``__pfx_``
    padding on this kernel) lies less than 16 bytes past the last instruction.
    """
    start = syms.address(span.function, owner)
    later = [a for a in syms.starts() if a > start]
    return bool(later) and span.end > min(later) - start - 16


def detach(knob: Knob, syms: Kallsyms) -> None:
    """Remove every pin of the knob (detaching its probes) and its module slots."""
    forget(knob.name)
    where = pin_dir(knob.name)
    used = attached_offsets(knob) if where.exists() else {}
    if where.exists():
        for link in sorted(where.glob("link_*")):
            link.unlink()
        for pinned in where.iterdir():
            pinned.unlink()
        where.rmdir()
    for i, site in enumerate(knob.sites):
        try:
            module.unregister(syms.address(site.function, site.module) +
                              used.get(i, site.probe_offset), site)
        except EnvironmentProblem:
            continue


def counters(knob: str, sites: int) -> list[dict[str, int]]:
    """Per-site hits / applied / mismatches / refused, summed over CPUs."""
    fresh(knob)
    counts = pinned(knob, "sie_counts")
    ncpu, size = possible_cpus(), struct.calcsize(_COUNT)
    out: list[dict[str, int]] = []
    for i in range(sites):
        raw = counts.lookup(struct.pack("<I", i), ncpu * size) or b"\0" * ncpu * size
        totals = [0, 0, 0, 0]
        for cpu in range(ncpu):
            for k, v in enumerate(struct.unpack_from(_COUNT, raw, cpu * size)):
                totals[k] += v
        out.append(dict(zip(COUNTERS, totals, strict=True)))
    return out


def optimized(addresses: list[int]) -> list[bool | None]:
    """Whether the kprobe at each address is jump-optimized (None: debugfs not mounted)."""
    try:
        lines = KPROBE_LIST.read_text().splitlines()
    except OSError:
        return [None for _ in addresses]
    state = {int(line.split()[0], 16): "[OPTIMIZED]" in line for line in lines if line.strip()}
    return [state.get(a, False) for a in addresses]


SELFTEST_DIR = PIN_ROOT / "_selftest"
REFUSAL_SLOTS = ("arbitrary_address", "instruction_pointer", "trap_flag", "hits")


def refusal_selftest(function: str, offset: int, object_path: Path,
                     trigger: Callable[[], None]) -> dict[str, int]:
    """Attach the refusal program at ``function+offset``, run ``trigger``, detach.

    Returns how many of each forbidden write the module refused, next to the hit count:
    on a correct module every count equals ``hits``.
    """
    SELFTEST_DIR.mkdir(parents=True, exist_ok=True)
    try:
        obj = BpfObject(object_path, SELFTEST_DIR)
        try:
            obj.attach_kprobe("sie_refusal", function, offset, SELFTEST_DIR / "link")
        finally:
            obj.close()
        trigger()
        (SELFTEST_DIR / "link").unlink()
        counts = PinnedMap(SELFTEST_DIR / "sie_refusals")
        try:
            raw = [counts.lookup(struct.pack("<I", i), 8) or b"\0" * 8 for i in range(4)]
        finally:
            counts.close()
        return {name: struct.unpack("<Q", r)[0] for name, r in zip(REFUSAL_SLOTS, raw, strict=True)}
    finally:
        for pinned in SELFTEST_DIR.iterdir():
            pinned.unlink()
        SELFTEST_DIR.rmdir()
