"""Count how often a workload passes each knob's sites, without changing the kernel's behaviour.

Knob selection needs one number per knob: how many times a workload ran the code that reads
the constant. tracefs kprobe events give it with nothing of ours in the probe path: every
site becomes a ``p:`` event (no BPF object, no compiler), the kernel's own per-event
``nhit`` counter (``kprobe_profile``) is the answer. The events are enabled in a private
tracefs instance whose ring buffer is switched off, so a hit costs the kprobe trap and a
counter increment, and the global trace buffer other tools use stays untouched.

Every event belongs to a group named for this counter (``autotune_cnt_<pid>_<n>``); ``stop``
removes exactly those, and ``sweep`` removes groups whose process is gone (a counter killed
before its own clean-up ran), so an armed counter never outlives its owner.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

from autotune.core.catalog import Knob, Site
from autotune.core.errors import EnvironmentProblem
from kernel_runtime import tracefs as tracefs_mod

PREFIX = "autotune_cnt_"
_serial = itertools.count(1)


def tracefs() -> Path:
    """The tracefs mount with kprobe events, or an EnvironmentProblem saying what is missing."""
    t = tracefs_mod.root()
    if t is None:
        raise EnvironmentProblem("no tracefs kprobe_events (kernel without CONFIG_KPROBE_EVENTS, "
                                 "or tracefs not mounted): knob hits cannot be counted here; "
                                 "use --target lab or --no-select")
    return t


def _module_loaded(module: str) -> bool:
    return Path("/sys/module", module.replace("-", "_")).is_dir()


@dataclass
class Counts:
    """What a count found: hits per knob, and why some knobs could not be (fully) counted."""

    hits: dict[str, int] = field(default_factory=dict)
    unattached: dict[str, str] = field(default_factory=dict)  # knob -> reason (no site armed)
    partial: dict[str, str] = field(default_factory=dict)  # knob -> sites not armed
    sites: int = 0  # events armed

    def to_json(self) -> dict[str, object]:
        return {"hits": self.hits, "unattached": self.unattached, "partial": self.partial,
                "sites": self.sites}


class HitCounter:
    """One counting session: arm on ``start``, read and remove everything on ``stop``."""

    def __init__(self, knobs: list[Knob]) -> None:
        self.group = f"{PREFIX}{os.getpid()}_{next(_serial)}"
        self._knobs = [k for k in knobs if k.backend == "sie"]
        self._root = tracefs()
        self._instance = self._root / "instances" / self.group
        self._events: dict[str, list[str]] = {}  # event name -> knobs that own the site
        self._refused: dict[str, list[str]] = {}  # knob -> refused site descriptions
        self._armed = False

    @property
    def events_file(self) -> Path:
        return self._root / "kprobe_events"

    def start(self) -> None:
        """Register one event per distinct site address, then enable them all with one write."""
        sweep(self._root)
        by_address: dict[str, str] = {}
        try:
            for knob in self._knobs:
                for site in knob.sites:
                    name = self._register(site, by_address, knob.name)
                    if name is None:
                        continue
                    owners = self._events.setdefault(name, [])
                    if knob.name not in owners:  # a catalog may list one address twice
                        owners.append(knob.name)
            if not self._events:
                return
            self._instance.mkdir()
            (self._instance / "tracing_on").write_text("0\n")  # count, record nothing
            (self._instance / "events" / self.group / "enable").write_text("1\n")
            self._armed = True
        except BaseException:
            self.remove()
            raise

    def _register(self, site: Site, by_address: dict[str, str], knob: str) -> str | None:
        """The event counting ``site`` (shared by every knob with that address), or None."""
        if site.module and not _module_loaded(site.module):
            self._refused.setdefault(knob, []).append(
                f"{site.function}: module {site.module} not loaded")
            return None
        errors = []
        for offset in dict.fromkeys([site.probe_offset, *site.probe_offsets]):
            spec = tracefs_mod.spec(site, offset)
            if spec in by_address:
                return by_address[spec]
            name = f"{self.group}_{len(by_address)}"
            err = tracefs_mod.command(self.events_file, f"p:{self.group}/{name} {spec}\n")
            if err == 0:
                by_address[spec] = name
                return name
            if err not in (errno.EINVAL, errno.EILSEQ, errno.ENOENT):
                raise EnvironmentProblem(f"kprobe_events refused {spec}: {os.strerror(err)}")
            errors.append(errno.errorcode.get(err, str(err)))
        self._refused.setdefault(knob, []).append(
            f"{site.function}+{site.probe_offset:#x}: kprobe refused at every equivalent offset "
            f"({', '.join(dict.fromkeys(errors))})")
        return None

    def read(self) -> dict[str, int]:
        """Hits per event so far, from the kernel's own counters."""
        hits: dict[str, int] = {}
        for line in (self._root / "kprobe_profile").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] in self._events:
                hits[parts[0]] = int(parts[1])
        return hits

    def stop(self) -> Counts:
        """Read the counts, then remove every event of this counter."""
        try:
            per_event = self.read() if self._events else {}
        finally:
            self.remove()
        counts = Counts(sites=len(self._events))
        for event, owners in self._events.items():
            for knob in owners:
                counts.hits[knob] = counts.hits.get(knob, 0) + per_event.get(event, 0)
        for knob, why in self._refused.items():
            target = counts.partial if knob in counts.hits else counts.unattached
            target[knob] = "; ".join(why)
        return counts

    def remove(self) -> None:
        """Disable and delete this counter's events and instance; safe to call twice."""
        if self._armed:
            with contextlib.suppress(OSError):
                (self._instance / "events" / self.group / "enable").write_text("0\n")
            self._armed = False
        with contextlib.suppress(OSError):
            self._instance.rmdir()
        for name in self._events:
            tracefs_mod.command(self.events_file, f"-:{self.group}/{name}\n")
        left = ours(self._root, self.group)
        if left:
            raise EnvironmentProblem(f"kprobe events {left[:3]} of {self.group} could not be "
                                     f"removed: remove them with 'echo -:{self.group}/NAME >> "
                                     f"{self.events_file}'")


def ours(root: Path, prefix: str = PREFIX) -> list[str]:
    """``group/event`` of every kprobe event whose group starts with ``prefix``."""
    found = []
    for line in (root / "kprobe_events").read_text().splitlines():
        head = line.split()[0] if line.split() else ""
        group_event = head.partition(":")[2]
        if group_event.startswith(prefix):
            found.append(group_event)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(root: Path) -> list[str]:
    """Remove the counters of processes that died before their clean-up; returns what went."""
    gone = []
    for group_event in ours(root):
        group, _, _ = group_event.partition("/")
        pid = group.removeprefix(PREFIX).partition("_")[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        instance = root / "instances" / group
        with contextlib.suppress(OSError):
            (instance / "events" / group / "enable").write_text("0\n")
        with contextlib.suppress(OSError):
            instance.rmdir()
        if tracefs_mod.command(root / "kprobe_events", f"-:{group_event}\n") == 0:
            gone.append(group_event)
    return gone


class Counting:
    """Counters by token, for a target that hands tokens to its caller; ``close`` removes all."""

    def __init__(self) -> None:
        self._live: dict[str, HitCounter] = {}

    def start(self, knobs: list[Knob]) -> str:
        counter = HitCounter(knobs)
        counter.start()
        self._live[counter.group] = counter
        return counter.group

    def stop(self, token: str) -> Counts:
        counter = self._live.pop(token, None)
        if counter is None:
            raise EnvironmentProblem(f"no counting session {token!r} (stopped already, or its "
                                     "target was closed)")
        return counter.stop()

    def close(self) -> None:
        """Remove every live counter (Ctrl-C, a lapsed lease, a closing target)."""
        errors = []
        while self._live:
            _, counter = self._live.popitem()
            try:
                counter.remove()
            except EnvironmentProblem as e:
                errors.append(str(e))
        if errors:
            raise EnvironmentProblem("; ".join(errors))
