"""One controller per kernel: a machine-wide advisory lock.

A kernel is a global resource. Two controllers changing the same tunables interleave their
journals (A saves 64, B saves A's value, A restores 64, B restores A's value) and leave the
kernel changed, and their measurements contaminate each other. The lock is an flock, so it
is released by the kernel when its holder dies, even by SIGKILL.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from autotune.core.errors import EnvironmentProblem

DEFAULT_PATH = Path("/run/autotune-kernel.lock")


def default_lock_path() -> Path:
    env = os.environ.get("AUTOTUNE_KERNEL_LOCK")
    if env:
        return Path(env)
    return DEFAULT_PATH if os.access(DEFAULT_PATH.parent, os.W_OK) else Path("/tmp/autotune-kernel.lock")


class KernelLock:
    """Held from the first kernel change until ``release`` (or process death)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_lock_path()
        self._fh: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def acquire(self) -> None:
        if self._fh is not None:
            return
        fh = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise EnvironmentProblem(
                f"another autotune (pid {holder}) is changing this kernel: wait for it to finish "
                f"or stop it (lock {self.path})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
