"""One lab VM's lifecycle: start QEMU, wait for the agent, record state, stop.

A lab lives in a run directory (state file, console log, shell socket, per-boot token).
``autotune lab start`` runs the *default* lab detached, so later commands and studies
attach to it; a ``LabTarget`` with no running default lab boots a *private* one in a
temporary directory and owns it: that QEMU gets a parent-death signal, so even a killed
controller leaves no VM behind.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from analysis.debian_kernel import file_lock
from autotune.core.errors import AutotuneError, EnvironmentProblem
from kernel_runtime.agent.client import AgentClient
from kernel_runtime.lab.image import LabImage
from kernel_runtime.lab.qemu import QEMU, VmFiles, boot_initrd, kvm_usable, qemu_argv
from kernel_runtime.paths import state_dir
from kernel_runtime.processes import ProcessTable, free_loopback_port

BOOT_TIMEOUT = 180.0
KEPT_CRASH_LOGS = 20


@dataclass(frozen=True)
class LabState:
    """What ``lab.json`` records about a running VM."""

    pid: int
    create_time: float
    port: int
    release: str
    version: str
    accel: str
    started: float
    boot_seconds: float


class Lab:
    """A lab VM bound to a run directory."""

    def __init__(self, run_dir: Path, *, detached: bool, cpus: int | None = None,
                 memory_mb: int = 2048) -> None:
        self.files = VmFiles(run_dir)
        self.detached = detached
        self.cpus = cpus or max(1, min(len(os.sched_getaffinity(0)), 4))
        self.memory_mb = memory_mb
        self._procs = ProcessTable()
        self._owned_pid: int | None = None
        self._private = False

    @classmethod
    def default(cls) -> Lab:
        """The lab that ``autotune lab start`` runs and other commands attach to."""
        run_dir = state_dir() / "lab"
        run_dir.mkdir(parents=True, exist_ok=True)
        return cls(run_dir, detached=True)

    @classmethod
    def private(cls) -> Lab:
        """A lab in a fresh temporary directory, removed by ``close``."""
        lab = cls(Path(tempfile.mkdtemp(prefix="autotune-lab-")), detached=False)
        lab._private = True
        return lab

    @property
    def run_dir(self) -> Path:
        return self.files.run_dir

    def _state_path(self) -> Path:
        return self.run_dir / "lab.json"

    def state(self) -> LabState | None:
        """The recorded state if its QEMU process still runs (pid reuse checked)."""
        try:
            st = LabState(**json.loads(self._state_path().read_text()))
            proc = psutil.Process(st.pid)
            if abs(proc.create_time() - st.create_time) < 1.0 and proc.status() != "zombie":
                return st
        except (OSError, ValueError, TypeError, psutil.Error):
            pass
        return None

    def token(self) -> str:
        return self.files.token.read_text().strip()

    def client(self, *, lease: float = 5.0) -> AgentClient:
        st = self.state()
        if st is None:
            raise EnvironmentProblem(f"no lab VM runs in {self.run_dir}: run 'autotune lab start'")
        return AgentClient("127.0.0.1", st.port, self.token(), lease=lease)

    def start(self, image: LabImage, *,
              progress: Callable[[str], None] = lambda _: None) -> LabState:
        """Boot the VM and wait until its agent answers hello (one starter at a time)."""
        with file_lock(self.run_dir / ".start.lock"):
            return self._start(image, progress)

    def _start(self, image: LabImage, progress: Callable[[str], None]) -> LabState:
        if self.state() is not None:
            raise EnvironmentProblem(f"a lab VM already runs in {self.run_dir}: "
                                     "'autotune lab stop' first")
        if shutil.which(QEMU) is None:
            raise EnvironmentProblem(f"{QEMU} not found: apt-get install -y qemu-system-x86")
        fd = os.open(self.files.token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(16) + "\n")
        boot_initrd(image, self.token(), self.files)
        if self.files.console.exists():
            os.replace(self.files.console, self.run_dir / "console.prev.log")
        kvm = kvm_usable(image)
        port = free_loopback_port()
        argv = qemu_argv(image, self.files, port=port, cpus=self.cpus,
                         memory_mb=self.memory_mb, kvm=kvm)
        progress(f"booting {image.version.release} under {'KVM' if kvm else 'TCG'}")
        start = time.monotonic()
        pid = self._launch(argv)
        st = LabState(pid=pid, create_time=psutil.Process(pid).create_time(), port=port,
                      release=image.version.release, version=image.version.package,
                      accel="kvm" if kvm else "tcg", started=time.time(), boot_seconds=0.0)
        self._write_state(st)
        try:
            self._wait_for_agent(st, start)
        except BaseException:
            self.stop()
            raise
        st = LabState(**(asdict(st) | {"boot_seconds": round(time.monotonic() - start, 2)}))
        self._write_state(st)
        return st

    def _launch(self, argv: list[str]) -> int:
        log = str(self.run_dir / "qemu.log")
        if not self.detached:
            self._owned_pid = self._procs.spawn(argv, cpus=None, cwd=str(self.run_dir),
                                                log_path=log)
            return self._owned_pid
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, cwd=self.run_dir, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        return proc.pid

    def _write_state(self, st: LabState) -> None:
        tmp = self._state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(st)) + "\n")
        os.replace(tmp, self._state_path())

    def _wait_for_agent(self, st: LabState, start: float) -> None:
        while time.monotonic() - start < BOOT_TIMEOUT:
            if self.state() is None:
                raise EnvironmentProblem(f"the lab VM exited while booting: {self.last_words()}")
            client = AgentClient("127.0.0.1", st.port, self.token())
            try:
                client.connect(timeout=3)
                client.close()
                return
            except (OSError, AutotuneError):
                time.sleep(0.5)
        raise EnvironmentProblem(f"the lab agent did not answer within {BOOT_TIMEOUT:.0f} s: "
                                 f"{self.last_words()} (full log: {self.files.console})")

    def console_text(self) -> str:
        try:
            return self.files.console.read_text(errors="replace")
        except OSError:
            return ""

    def keep_console(self) -> Path:
        """Copy this boot's console log where it outlives the run directory (crash evidence).

        A private lab's run directory goes when the lab closes, and a restart rotates the
        log: an oops's backtrace would be gone before anyone read it. The newest
        ``KEPT_CRASH_LOGS`` copies stay under the state directory.
        """
        keep = state_dir() / "lab-crashes"
        keep.mkdir(parents=True, exist_ok=True)
        dest = keep / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-console.log"
        dest.write_text(self.console_text())
        for old in sorted(keep.glob("*-console.log"))[:-KEPT_CRASH_LOGS]:
            old.unlink(missing_ok=True)
        return dest

    def last_words(self, lines: int = 3) -> str:
        tail = [ln.strip() for ln in self.console_text().splitlines() if ln.strip()][-lines:]
        log = (self.run_dir / "qemu.log")
        qemu = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        return " | ".join(tail + qemu) or "no console output"

    def stop(self, grace: float = 5.0) -> None:
        """Power the VM off (SIGTERM, then SIGKILL); the guest's state is discarded."""
        if self._owned_pid is not None:
            self._procs.stop(self._owned_pid, grace)
            self._owned_pid = None
        st = self.state()
        if st is not None:
            try:
                proc = psutil.Process(st.pid)
                proc.send_signal(signal.SIGTERM)
                proc.wait(grace)
            except psutil.TimeoutExpired:
                proc.kill()
            except psutil.Error:
                pass
        self._state_path().unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the VM; a private lab also removes its run directory."""
        self.stop()
        if self._private:
            shutil.rmtree(self.run_dir, ignore_errors=True)
