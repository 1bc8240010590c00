"""Backends for tunables that are plain files: /proc/sys (sysctl) and debugfs.

The raw text of the file is the journal token, so a revert restores exactly what was
found (including formatting), not our parse of it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autotune.core.catalog import Knob
from autotune.core.errors import BadInputError
from kernel_runtime.backend import GLOBAL, Backend, KnobState, Scope


class _FileBackend(Backend):
    root: Path = Path("/")

    def __init__(self, *, root: Path | None = None) -> None:
        if root is not None:
            self.root = root
        self._loaded: dict[str, Knob] = {}

    def file(self, knob: Knob) -> Path:
        assert knob.path is not None
        return self.root / knob.path

    def unavailable_reason(self, knob: Knob) -> str | None:
        path = self.file(knob)
        if not path.exists():
            return self.missing_reason(path)
        try:
            current = path.read_text()
        except OSError as e:
            return f"{path} unreadable ({e.strerror})"
        if not current.strip().lstrip("-").isdigit():
            return f"{path} holds {current.strip()!r}, not one integer"
        if not os.access(path, os.W_OK):
            return f"{path} not writable (run as root)"
        try:
            path.write_text(current)  # rewriting the same value proves writability, changes nothing
        except OSError as e:
            return f"{path} not writable ({e.strerror}; a container or read-only /proc?)"
        return None

    def missing_reason(self, path: Path) -> str:
        return f"{path} does not exist on this kernel"

    def load(self, knob: Knob) -> None:
        self._loaded[knob.name] = knob

    def _check_scope(self, knob: Knob, scope: Scope) -> None:
        if scope != GLOBAL:
            raise BadInputError(f"knob {knob.name!r} is a {self.kind} tunable: only global scope exists "
                                f"(drop --cgroup/--pid)")

    def read(self, knob: Knob, scope: Scope = GLOBAL) -> Any:
        return self.file(knob).read_text()

    def set(self, knob: Knob, value: int, scope: Scope = GLOBAL) -> None:
        self._check_scope(knob, scope)
        self.file(knob).write_text(f"{value}\n")

    def restore(self, knob: Knob, token: Any, scope: Scope = GLOBAL) -> None:
        self.file(knob).write_text(str(token))

    def unload(self) -> None:
        self._loaded.clear()

    def status(self) -> list[KnobState]:
        return [KnobState(name=k.name, backend=self.kind, value=self.read(k).strip())
                for k in self._loaded.values()]


class SysctlBackend(_FileBackend):
    """/proc/sys/<path>: always present where the kernel has the feature."""

    kind = "sysctl"
    root = Path("/proc/sys")


class DebugfsBackend(_FileBackend):
    """/sys/kernel/debug/<path>: scheduler and other debug tunables."""

    kind = "debugfs"
    root = Path("/sys/kernel/debug")

    def missing_reason(self, path: Path) -> str:
        if not any(self.root.iterdir()) if self.root.exists() else True:
            return f"debugfs not mounted: run 'mount -t debugfs none {self.root}'"
        return f"{path} does not exist on this kernel"
