"""The ``host`` target: this machine's own kernel, with processes run locally."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from autotune.core.catalog import Knob
from autotune.core.kernel import KernelInfo, running_kernel
from kernel_runtime.backend import Backend
from kernel_runtime.controller import KnobController
from kernel_runtime.hitcount import Counting, Counts
from kernel_runtime.journal import Journal, SessionKind
from kernel_runtime.kernel_lock import KernelLock
from kernel_runtime.paths import state_dir
from kernel_runtime.processes import ProcessTable, free_loopback_port, loopback_port_open
from kernel_runtime.sie import SieBackend
from kernel_runtime.sie.knobset import DEFAULT_CHOICE, CatalogChoice, KnobSet, load_knob_set
from kernel_runtime.target import CommandResult, ProcessHandle, Target
from kernel_runtime.tunables import DebugfsBackend, SysctlBackend, curated_knobs

log = logging.getLogger(__name__)


def default_journal() -> Journal:
    return Journal(state_dir() / "journal.jsonl")


def local_controller(kind: SessionKind = "transient", knobs: KnobSet | None = None,
                     *, allow_unverified: bool = False) -> KnobController:
    """A controller over this machine's backends and its on-disk journal.

    The SIE backend joins only when the running kernel can do SIE; otherwise it is left out
    and the reason logged (its knobs then report it as unusable).
    """
    backends: dict[str, Backend] = {"sysctl": SysctlBackend(), "debugfs": DebugfsBackend()}
    sie = SieBackend.for_running_kernel(knobs, allow_unverified=allow_unverified)
    if isinstance(sie, str):
        log.info("SIE backend left out: %s", sie)
    else:
        backends["sie"] = sie
    return KnobController(backends=backends, journal=default_journal(), kind=kind,
                          lock=KernelLock())


class HostTarget(Target):
    """Tune the kernel this process runs on."""

    name = "host"

    def __init__(self, *, session_kind: SessionKind = "transient",
                 catalog: CatalogChoice = DEFAULT_CHOICE) -> None:
        self._kernel = running_kernel()
        self.knob_set = load_knob_set(self._kernel, catalog)  # refuses a --catalog of another build
        self._control = local_controller(session_kind, self.knob_set,
                                         allow_unverified=catalog.allow_unverified)
        self._procs = ProcessTable()
        self._dirs: list[str] = []
        self.counting = Counting()

    def kernel(self) -> KernelInfo:
        return self._kernel

    def knobs(self) -> list[Knob]:
        sie = self._control.backends.get("sie")
        return curated_knobs() + (self.knob_set.knobs() if isinstance(sie, SieBackend) else [])

    @property
    def control(self) -> KnobController:
        return self._control

    def cpu_count(self) -> int:
        return len(os.sched_getaffinity(0))

    def which(self, program: str) -> str | None:
        return shutil.which(program, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin:/sbin")

    def make_workdir(self, prefix: str) -> str:
        path = tempfile.mkdtemp(prefix=f"autotune-{prefix}-")
        self._dirs.append(path)
        return path

    def write_file(self, path: str, text: str) -> None:
        Path(path).write_text(text)

    def free_port(self) -> int:
        return free_loopback_port()

    def port_open(self, port: int) -> bool:
        return loopback_port_open(port)

    def spawn(self, argv: Sequence[str], *, cpus: Sequence[int] | None = None,
              cwd: str | None = None) -> ProcessHandle:
        log = os.path.join(cwd or self.make_workdir("proc"), "process.log")
        return ProcessHandle(self._procs.spawn(argv, cpus=cpus, cwd=cwd, log_path=log), tuple(argv))

    def run(self, argv: Sequence[str], *, timeout: float, cpus: Sequence[int] | None = None,
            cwd: str | None = None) -> CommandResult:
        rc, out, err, secs = self._procs.run(argv, timeout=timeout, cpus=cpus, cwd=cwd)
        return CommandResult(rc, out, err, secs)

    def alive(self, handle: ProcessHandle) -> bool:
        return self._procs.alive(handle.ident)

    def cpu_seconds(self, handle: ProcessHandle) -> float:
        return self._procs.cpu_seconds(handle.ident)

    def stop(self, handle: ProcessHandle, *, grace: float = 5.0) -> None:
        self._procs.stop(handle.ident, grace)

    def start_counting(self, knobs: list[Knob]) -> str:
        """tracefs kprobe events on every site (see ``kernel_runtime.hitcount``)."""
        return self.counting.start(knobs)

    def stop_counting(self, token: str) -> Counts:
        return self.counting.stop(token)

    def close(self) -> None:
        try:
            self._control.close()
        finally:
            self._procs.stop_all()
            for d in self._dirs:
                shutil.rmtree(d, ignore_errors=True)
            self._dirs.clear()
            self.counting.close()
