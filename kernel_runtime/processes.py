"""Local process primitives with no leaks: pinned, parent-death-signalled, always reaped.

Used by the host target and by the agent inside the lab. Every child gets
PR_SET_PDEATHSIG so even a SIGKILLed controller takes its servers down with it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence

import psutil

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _preexec(cpus: Sequence[int] | None) -> Callable[[], None]:
    def setup() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if cpus:
            os.sched_setaffinity(0, set(cpus))

    return setup


class ProcessTable:
    """Owns every process it started; ``stop_all`` leaves none behind."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, argv: Sequence[str], *, cpus: Sequence[int] | None, cwd: str | None,
              log_path: str) -> int:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, preexec_fn=_preexec(cpus),
                                    start_new_session=True)
        self._procs[proc.pid] = proc
        return proc.pid

    def run(self, argv: Sequence[str], *, timeout: float, cpus: Sequence[int] | None,
            cwd: str | None) -> tuple[int, str, str, float]:
        start = time.monotonic()
        proc = subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=_preexec(cpus), start_new_session=True)
        self._procs[proc.pid] = proc
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\nkilled after {timeout:.0f} s timeout".encode()
        finally:
            self._procs.pop(proc.pid, None)
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"), \
            time.monotonic() - start

    def alive(self, pid: int) -> bool:
        proc = self._procs.get(pid)
        return proc is not None and proc.poll() is None

    def cpu_seconds(self, pid: int) -> float:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return 0.0
        return float(t.user + t.system)

    def stop(self, pid: int, grace: float = 5.0) -> None:
        proc = self._procs.pop(pid, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for pid in list(self._procs):
            self.stop(pid)


def loopback_port_open(port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``127.0.0.1:port`` right now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def free_loopback_port() -> int:
    """Ask the kernel for a free port; the tiny race with other binders is acceptable here."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
