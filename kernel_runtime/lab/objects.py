"""Ship the BPF objects a lab guest lacks, compiled on the host (the guest has no clang).

The image carries objects for the hand catalog only. For any other knob (an analysis
catalog's) the guest renders each site it will attach and returns the C of those whose
object it cannot find (``sie_missing``): the guest's own rendering, so a host whose
templates moved on never ships an object the guest would not ask for. The host compiles
them against the lab kernel's BTF (cached by hash, like the image's) and pushes them into
the guest's artifact cache (``sie_store``), where the SIE backend looks after the image's
directory. No image rebuild; a reboot empties the guest cache and the next apply refills it.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from analysis.debian_kernel import lab_root
from autotune.core.catalog import Knob
from autotune.core.errors import EnvironmentProblem
from kernel_runtime.lab.vm import LabState
from kernel_runtime.sie.payload import compile_for_lab
from kernel_runtime.sie.render import Rendered

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shipment:
    """One push: how many objects, their bytes, host compile and push wall times."""

    objects: int
    size: int
    compile_seconds: float
    push_seconds: float


class LabObjects:
    """The host side of object shipping for one LabTarget (its ``_call`` and VM state)."""

    def __init__(self, call: Callable[..., Any], state: Callable[[], LabState | None]) -> None:
        self._call = call
        self._state = state
        self._ready: set[str] = set()  # knob specs whose objects the guest has, this boot
        self.shipments: list[Shipment] = []

    def forget(self) -> None:
        """A new boot: the guest's cache is empty again."""
        self._ready.clear()

    def missing(self, knobs: list[Knob]) -> list[Rendered]:
        """Site programs of ``knobs`` the guest has no object for (and would attach)."""
        wanted = self._call("sie_missing", knobs=[k.model_dump(mode="json") for k in knobs])
        return [Rendered(w["template"], w["source"]) for w in wanted]

    def ship(self, knobs: list[Knob]) -> None:
        todo = {k.model_dump_json(): k for k in knobs if k.backend == "sie"}
        for key in self._ready & todo.keys():
            del todo[key]
        if not todo:
            return
        wanted = self.missing(list(todo.values()))
        if wanted:
            state = self._state()
            if state is None:
                raise EnvironmentProblem("the lab VM is not running: 'autotune lab start' or retry")
            t0 = time.monotonic()
            objects = compile_for_lab(lab_root() / state.version, wanted)
            t1 = time.monotonic()
            self._call("sie_store", objects={n: base64.b64encode(b).decode()
                                             for n, b in objects.items()})
            shipped = Shipment(len(objects), sum(len(b) for b in objects.values()), t1 - t0,
                               time.monotonic() - t1)
            self.shipments.append(shipped)
            log.info("shipped %d BPF objects (%d bytes) to the lab: compile %.2f s, push %.2f s",
                     shipped.objects, shipped.size, shipped.compile_seconds, shipped.push_seconds)
        self._ready.update(todo)
