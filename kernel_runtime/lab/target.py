"""``LabTarget``: the Target interface served by the agent inside the lab VM.

Workloads call the same process primitives as on the host and the study calls the same
knob controller; each call becomes one RPC. Around the calls sit the safety nets: a
lease renewer (stop renewing and the agent resets every knob), and a watchdog that turns
a panic, lockup or hang into a ``TargetCrashed`` naming the reason, after which the next
call boots the lab again from scratch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from analysis.debian_kernel import LAB_ROLES, fetch, resolve_version
from autotune.core.catalog import Knob
from autotune.core.errors import AutotuneError, TargetCrashed
from autotune.core.kernel import KernelInfo
from kernel_runtime.agent.client import AgentClient
from kernel_runtime.backend import GLOBAL, KnobState, Scope
from kernel_runtime.hitcount import Counts
from kernel_runtime.lab.health import KernelEvent, Watchdog
from kernel_runtime.lab.image import build_image
from kernel_runtime.lab.objects import LabObjects
from kernel_runtime.lab.vm import Lab
from kernel_runtime.sie.knobset import DEFAULT_CHOICE, CatalogChoice, KnobSet, load_knob_set
from kernel_runtime.target import CommandResult, ProcessHandle, Target

DEFAULT_LEASE = 5.0
CALL_WAIT = 120.0


class RemoteControl:
    """``KnobControl`` whose every operation runs in the lab's agent session.

    ``prepare`` runs on the host before an apply: it ships the BPF objects the guest lacks.
    """

    def __init__(self, call: Callable[..., Any],
                 prepare: Callable[[list[Knob]], None] = lambda _: None) -> None:
        self._call = call
        self._prepare = prepare

    def usable(self, knobs: list[Knob]) -> tuple[list[Knob], list[tuple[str, str]]]:
        res = self._call("usable", knobs=[k.model_dump(mode="json") for k in knobs])
        return [Knob.model_validate(k) for k in res["ok"]], [(n, r) for n, r in res["left"]]

    def apply(self, values: Mapping[str, int], knobs: Mapping[str, Knob],
              scope: Scope = GLOBAL) -> None:
        self._prepare([k for n, k in knobs.items() if n in values])
        self._call("apply", values={n: int(v) for n, v in values.items()},
                   knobs={n: k.model_dump(mode="json") for n, k in knobs.items() if n in values},
                   scope=scope.to_json())

    def revert(self) -> None:
        self._call("revert")

    def recover(self, *, include_policies: bool = False) -> list[str]:
        restored: list[str] = self._call("recover", include_policies=include_policies)
        return restored

    def status(self) -> list[KnobState]:
        return [KnobState(**s) for s in self._call("status")]

    def close(self) -> None:
        self.revert()


class LeaseRenewer:
    """Renews one agent session's lease from a background thread.

    ``stop`` is what a stalled or partitioned controller looks like to the agent: within
    one lease the agent resets the session's knobs and its next call raises LeaseLapsed.
    """

    def __init__(self, client: AgentClient, lease: float) -> None:
        self._client = client
        self.lease = lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="lab-lease",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.lease)

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease / 4):
            try:
                self._client.call("renew", wait=self.lease)
            except AutotuneError:
                if self._client.failed is not None:
                    return


class LabTarget(Target):
    """Tune the lab VM's kernel; boots a private VM unless ``autotune lab start`` runs one."""

    name = "lab"

    def __init__(self, *, lab: Lab | None = None, lease: float = DEFAULT_LEASE,
                 progress: Callable[[str], None] = lambda _: None,
                 catalog: CatalogChoice = DEFAULT_CHOICE) -> None:
        if lab is None:
            lab = Lab.default()
            if lab.state() is None:
                lab = Lab.private()
        self.lab = lab
        self._lease = lease
        self._progress = progress
        self._catalog = catalog
        self.knob_set: KnobSet | None = None
        self.objects = LabObjects(self._call, lambda: self.lab.state())
        self._control = RemoteControl(self._call, self.objects.ship)
        self._client: AgentClient | None = None
        self._beat: AgentClient | None = None
        self._watchdog: Watchdog | None = None
        self.lease: LeaseRenewer | None = None
        self._dead: str | None = None
        self._crashed = threading.Event()
        self._handles: set[int] = set()
        self.info: dict[str, Any] = {}
        self._source: str | None = None
        self.boots = 0
        self.crash_log: Path | None = None
        try:
            self._boot()
        except BaseException:
            self._shutdown_session(polite=False)
            if not self.lab.detached:
                self.lab.close()
            raise

    # lifecycle -------------------------------------------------------------------------

    def _boot(self) -> None:
        if self.lab.state() is None:
            version = resolve_version()
            fetch(LAB_ROLES, version=version)
            self.lab.start(build_image(version, self._progress), progress=self._progress)
        client = self.lab.client(lease=self._lease)
        self.info = client.connect()
        state = self.lab.state()
        self._source = state.version if state is not None else None
        beat = self.lab.client(lease=self._lease)
        beat.connect()
        self._client, self._beat = client, beat
        if self.knob_set is None:  # a --catalog of another build is refused before any write
            self.knob_set = load_knob_set(self.kernel(), self._catalog)
        if self._catalog.allow_unverified:
            client.call("sie_options", allow_unverified_sites=True)
        self.objects.forget()
        self._dead = None
        self._crashed.clear()
        self._handles.clear()
        self.lease = LeaseRenewer(client, self._lease)
        self.lease.start()
        self._watchdog = Watchdog(console=self.lab.files.console,
                                  alive=lambda: self.lab.state() is not None,
                                  heartbeat=lambda: beat.call("health", wait=2.0),
                                  on_fatal=self._on_fatal)
        self._watchdog.start()
        self.boots += 1

    def _on_fatal(self, reason: str) -> None:
        """Watchdog verdict: fail every call in flight, and make sure the VM is down."""
        if self._dead is not None:
            return
        self._dead = reason
        self.lab.stop(grace=1.0)
        self.crash_log = self.lab.keep_console()
        self._dead = f"{reason} (console log: {self.crash_log})"
        err = TargetCrashed(f"lab kernel {self.kernel().release}: {self._dead}; "
                            "the lab restarts on next use")
        self._crashed.set()
        for c in (self._client, self._beat):
            if c is not None:
                c.fail(err)

    def _shutdown_session(self, *, polite: bool) -> None:
        if self.lease is not None:
            self.lease.stop()
        if self._watchdog is not None:
            self._watchdog.stop()
        for c in (self._client, self._beat):
            if c is not None and polite:
                c.close()
            elif c is not None:
                c.fail(AutotuneError("lab session ended"))

    def restart(self) -> None:
        """Power-cycle the VM and reconnect: a fresh kernel, no knobs, no processes."""
        self._shutdown_session(polite=False)
        self.lab.stop()
        self._progress("restarting the lab VM")
        self._boot()

    def close(self) -> None:
        try:
            self._shutdown_session(polite=self._dead is None)
        finally:
            if self.lab.detached:
                if self._dead is not None:
                    self.lab.stop()
            else:
                self.lab.close()

    @property
    def crashed(self) -> str | None:
        """The reason of the last crash if the lab has not been restarted since."""
        return self._dead

    def events(self) -> list[KernelEvent]:
        """Kernel warnings and fatal events seen on this boot's console."""
        return list(self._watchdog.events) if self._watchdog else []

    def health(self) -> dict[str, Any]:
        res: dict[str, Any] = self._call("health")
        return res | {"events": [e.reason for e in self.events()]}

    # RPC -------------------------------------------------------------------------------

    def _call(self, method: str, *, wait: float = CALL_WAIT, **params: Any) -> Any:
        if self._dead is not None:
            self.restart()
        assert self._client is not None
        try:
            return self._client.call(method, wait=wait, **params)
        except TargetCrashed as e:
            # The connection can drop a moment before the watchdog names the cause.
            if self._crashed.wait(3.0) and self._dead is not None:
                raise TargetCrashed(f"{method} failed: lab kernel {self.kernel().release}: "
                                    f"{self._dead}") from None
            self._on_fatal(str(e))
            raise

    # Target ------------------------------------------------------------------------------

    def kernel(self) -> KernelInfo:
        """The guest's own view, plus the Debian package version it was booted from."""
        return KernelInfo.model_validate(self.info["kernel"] | {"source_version": self._source})

    def knobs(self) -> list[Knob]:
        """The guest's own knobs (curated, hand catalog) and the host's analysis knobs."""
        own = [Knob.model_validate(k) for k in self._call("knobs")]
        names = {k.name for k in own}
        extra = self.knob_set.extras() if self.knob_set else []
        return own + [k for k in extra if k.name not in names]

    @property
    def control(self) -> RemoteControl:
        return self._control

    def cpu_count(self) -> int:
        n: int = self._call("cpu_count")
        return n

    def which(self, program: str) -> str | None:
        path: str | None = self._call("which", program=program)
        return path

    def make_workdir(self, prefix: str) -> str:
        path: str = self._call("make_workdir", prefix=prefix)
        return path

    def write_file(self, path: str, text: str) -> None:
        self._call("write_file", path=path, text=text)

    def free_port(self) -> int:
        port: int = self._call("free_port")
        return port

    def port_open(self, port: int) -> bool:
        is_open: bool = self._call("port_open", port=port)
        return is_open

    def spawn(self, argv: Sequence[str], *, cpus: Sequence[int] | None = None,
              cwd: str | None = None) -> ProcessHandle:
        ident: int = self._call("spawn", argv=list(argv), cpus=list(cpus) if cpus else None,
                                cwd=cwd)
        self._handles.add(ident)
        return ProcessHandle(ident, tuple(argv))

    def run(self, argv: Sequence[str], *, timeout: float, cpus: Sequence[int] | None = None,
            cwd: str | None = None) -> CommandResult:
        res = self._call("run", wait=timeout + 30, argv=list(argv), timeout=timeout,
                         cpus=list(cpus) if cpus else None, cwd=cwd)
        return CommandResult(**res)

    def start_counting(self, knobs: list[Knob]) -> str:
        """Counters armed by the agent; its session removes them on close or lease lapse."""
        token: str = self._call("count_start", knobs=[k.model_dump(mode="json") for k in knobs])
        return token

    def stop_counting(self, token: str) -> Counts:
        return Counts(**self._call("count_stop", token=token))

    def _current(self, handle: ProcessHandle) -> bool:
        """False for a handle from an earlier boot: that process died with its kernel."""
        return self._dead is None and handle.ident in self._handles

    def alive(self, handle: ProcessHandle) -> bool:
        return self._current(handle) and bool(self._call("alive", ident=handle.ident))

    def cpu_seconds(self, handle: ProcessHandle) -> float:
        return float(self._call("cpu_seconds", ident=handle.ident)) if self._current(handle) \
            else 0.0

    def stop(self, handle: ProcessHandle, *, grace: float = 5.0) -> None:
        if self._current(handle):
            self._call("stop", wait=grace + 30, ident=handle.ident, grace=grace)
        self._handles.discard(handle.ident)
