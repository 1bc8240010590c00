"""Attach, drive and detach one SIE knob: pinned programs, value maps and counters.

Everything lives pinned under ``/sys/fs/bpf/autotune/<KNOB>/`` (links and maps), so a
knob loaded by one process (``autotune knob load``) is changed by another (``knob set``)
with a plain map update, and survives until ``unload`` removes the pins.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from autotune.core.catalog import Knob, SafeSpan, Site
from autotune.core.errors import AutotuneError, BadInputError, EnvironmentProblem
from kernel_runtime.backend import Scope
from kernel_runtime.sie import module
from kernel_runtime.sie.libbpf import BpfObject, PinnedMap, possible_cpus
from kernel_runtime.sie.render import Rendered, render_site, render_span

BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "autotune"
KPROBE_LIST = Path("/sys/kernel/debug/kprobes/list")
Mode = Literal["immediate", "per-task"]
MODES: dict[str, int] = {"immediate": 0, "per-task": 1}
_SCOPE_KIND = {"global": 0, "cgroup": 1, "pid": 2}
_KEY, _VAL, _CTL, _COUNT = "<IIQ", "<qQ", "<QII", "<QQQQ"
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


def site_address(syms: Kallsyms, site: Site) -> int:
    return syms.address(site.function, site.module) + site.probe_offset


def pin_dir(knob: str) -> Path:
    """The knob's bpffs directory; analysis names a derived constant by its expression
    (``ca->delay_min >> 3``), so other characters are replaced and the name's hash added."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", knob)
    if safe != knob:
        safe += "-" + hashlib.sha256(knob.encode()).hexdigest()[:8]
    return PIN_ROOT / safe


def is_loaded(knob: str) -> bool:
    return (pin_dir(knob) / "sie_ctl").exists()


def attached_sites(knob: str) -> set[int]:
    """Indices of the sites whose probe link is pinned (the rest were skipped at load)."""
    return {int(p.name.removeprefix("link_site")) for p in pin_dir(knob).glob("link_site*")
            if p.name.removeprefix("link_site").isdigit()}


def _scope_key(scope: Scope) -> bytes:
    return struct.pack(_KEY, _SCOPE_KIND[scope.kind], 0, scope.ident if scope.kind != "global" else 0)


def attach(knob: Knob, *, mode: Mode, object_for: ObjectFor, syms: Kallsyms,
           skip: frozenset[int] = frozenset()) -> None:
    """Load and attach every site but those in ``skip`` (their module is not loaded), and the
    safe spans in per-task mode; nothing applies yet. Site indices stay the catalog's, so
    counters and object names do not depend on which modules are loaded."""
    if not BPFFS.is_mount():
        raise EnvironmentProblem(f"bpffs not mounted: run 'mount -t bpf bpf {BPFFS}'")
    where = pin_dir(knob.name)
    where.mkdir(parents=True, exist_ok=True)
    try:
        for i, site in enumerate(knob.sites):
            if i in skip:
                continue
            address = site_address(syms, site)
            obj = BpfObject(object_for(render_site(knob, site, i)), where)
            try:
                module.register(address, site)
                obj.attach_kprobe("sie_site", site.function, site.probe_offset, where / f"link_site{i}")
                if site.guard_offset is not None:
                    obj.attach_kprobe("sie_guard", site.function, site.guard_offset,
                                      where / f"link_site{i}_guard")
                if site.synthesis == "save-recompute":
                    assert site.save_offset is not None
                    obj.attach_kprobe("sie_save", site.function, site.save_offset,
                                      where / f"link_site{i}_save")
            finally:
                obj.close()
        if mode == "per-task":
            _attach_spans([s for i, s in enumerate(knob.sites) if i not in skip], knob.name,
                          object_for, syms, where)
        _fresh(knob.name)
        _map(knob.name, "sie_ctl").update(struct.pack("<I", 0), struct.pack(_CTL, 0, 0, MODES[mode]))
    except BaseException:
        detach(knob, syms)
        raise


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
    _forget(knob.name)
    where = pin_dir(knob.name)
    if where.exists():
        for link in sorted(where.glob("link_*")):
            link.unlink()
        for pinned in where.iterdir():
            pinned.unlink()
        where.rmdir()
    for site in knob.sites:
        try:
            module.unregister(site_address(syms, site), site)
        except EnvironmentProblem:
            continue


_open: dict[tuple[str, str], PinnedMap] = {}
_pinned_as: dict[str, int] = {}


def _fresh(knob: str) -> None:
    """One stat per operation: drop cached fds when another process re-pinned the knob
    (its control map's inode changed) or unloaded it."""
    try:
        ino = os.stat(pin_dir(knob) / "sie_ctl").st_ino
    except OSError as e:
        _forget(knob)
        raise EnvironmentProblem(f"knob {knob!r} is not loaded ({e.strerror}): "
                                 f"run 'autotune knob load {knob}'") from e
    if _pinned_as.get(knob) != ino:
        _forget(knob)
        _pinned_as[knob] = ino


def _map(knob: str, name: str) -> PinnedMap:
    """A pinned map of a loaded knob, opened once per process (a value change is then a
    stat and three bpf() calls: no path parsing, no open)."""
    found = _open.get((knob, name))
    if found is None:
        found = _open[(knob, name)] = PinnedMap(pin_dir(knob) / name)
    return found


def _forget(knob: str) -> None:
    _pinned_as.pop(knob, None)
    for key in [k for k in _open if k[0] == knob]:
        _open.pop(key).close()


def _ctl(knob: str) -> tuple[PinnedMap, tuple[int, int, int]]:
    ctl = _map(knob, "sie_ctl")
    raw = ctl.lookup(struct.pack("<I", 0), struct.calcsize(_CTL))
    assert raw is not None
    return ctl, struct.unpack(_CTL, raw)


def set_value(knob: str, value: int | None, scope: Scope, *, restoring: bool = False) -> int:
    """Make ``value`` live for ``scope`` (None: back to the kernel's constant); bump the epoch.

    A knob that disabled itself takes no new value, but a restore still goes through: it
    writes nothing anyway, and refusing it would leave the journal session open."""
    _fresh(knob)
    ctl, (epoch, disabled, mode) = _ctl(knob)
    if disabled and not restoring:
        raise AutotuneError(f"knob {knob!r} disabled itself: a site did not hold its default "
                            "value (wrong catalog for this kernel?); see 'autotune knob status'")
    values = _map(knob, "sie_values")
    epoch += 1
    if value is None:
        values.delete(_scope_key(scope))
    else:
        values.update(_scope_key(scope), struct.pack(_VAL, value, epoch))
    ctl.update(struct.pack("<I", 0), struct.pack(_CTL, epoch, disabled, mode))
    return epoch


def get_value(knob: str, scope: Scope) -> int | None:
    _fresh(knob)
    raw = _map(knob, "sie_values").lookup(_scope_key(scope), struct.calcsize(_VAL))
    return None if raw is None else int(struct.unpack(_VAL, raw)[0])


def control(knob: str) -> dict[str, int]:
    _fresh(knob)
    _, (epoch, disabled, mode) = _ctl(knob)
    return {"epoch": epoch, "disabled": disabled, "mode": mode}


def counters(knob: str, sites: int) -> list[dict[str, int]]:
    """Per-site hits / applied / mismatches / refused, summed over CPUs."""
    _fresh(knob)
    counts = _map(knob, "sie_counts")
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
