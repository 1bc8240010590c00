"""The Target interface: a kernel we may change, and a place to run processes next to it.

The study never touches a kernel directly: it asks a Target to apply values, to revert,
and to run the workload's processes beside the tuned kernel. ``host`` does this locally;
``lab`` does it inside a VM through the agent. Workloads are written once against these
primitives, which is why they work on every target.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from autotune.core.catalog import Knob
from autotune.core.errors import EnvironmentProblem
from autotune.core.kernel import KernelInfo
from kernel_runtime.backend import GLOBAL, KnobState, Scope
from kernel_runtime.hitcount import Counts


@dataclass(frozen=True)
class ProcessHandle:
    """A process started on a target; ``ident`` is the target's own handle (a pid here)."""

    ident: int
    argv: tuple[str, ...]


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class KnobControl(Protocol):
    """What a target offers for knobs: ``KnobController`` locally, an RPC proxy in the lab."""

    def usable(self, knobs: list[Knob]) -> tuple[list[Knob], list[tuple[str, str]]]: ...

    def apply(self, values: Mapping[str, int], knobs: Mapping[str, Knob],
              scope: Scope = GLOBAL) -> None: ...

    def revert(self) -> None: ...

    def recover(self, *, include_policies: bool = False) -> list[str]: ...

    def status(self) -> list[KnobState]: ...

    def close(self) -> None: ...


class Target(ABC):
    """A kernel under tuning plus process primitives on the same machine."""

    name: str = ""

    @abstractmethod
    def kernel(self) -> KernelInfo:
        """Release and build-id of the target's running kernel."""

    @abstractmethod
    def knobs(self) -> list[Knob]:
        """Every knob this target's catalogs describe (usable or not)."""

    @property
    @abstractmethod
    def control(self) -> KnobControl:
        """The journaled knob controller of this target."""

    @abstractmethod
    def cpu_count(self) -> int: ...

    @abstractmethod
    def which(self, program: str) -> str | None:
        """Path of ``program`` on the target, or None."""

    @abstractmethod
    def make_workdir(self, prefix: str) -> str:
        """A fresh private directory on the target, removed by ``close``."""

    @abstractmethod
    def write_file(self, path: str, text: str) -> None: ...

    @abstractmethod
    def free_port(self) -> int:
        """A loopback TCP port free on the target right now."""

    @abstractmethod
    def port_open(self, port: int) -> bool:
        """Whether a server accepts connections on the target's loopback ``port`` yet.

        A readiness probe that cannot hang: load generators pointed at a closed port may
        retry forever (redis-benchmark does), so workloads ask this first.
        """

    @abstractmethod
    def spawn(self, argv: Sequence[str], *, cpus: Sequence[int] | None = None,
              cwd: str | None = None) -> ProcessHandle:
        """Start a long-running process (a server); the target stops it at ``close``."""

    @abstractmethod
    def run(self, argv: Sequence[str], *, timeout: float, cpus: Sequence[int] | None = None,
            cwd: str | None = None) -> CommandResult:
        """Run a command to completion (a load generator), killing it at ``timeout``."""

    @abstractmethod
    def alive(self, handle: ProcessHandle) -> bool: ...

    @abstractmethod
    def cpu_seconds(self, handle: ProcessHandle) -> float:
        """User+system CPU time the process has used so far."""

    @abstractmethod
    def stop(self, handle: ProcessHandle, *, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""

    def start_counting(self, knobs: list[Knob]) -> str:
        """Arm hit counters on every site of ``knobs`` (SIE ones); a token for ``stop_counting``.

        Counting changes nothing the kernel computes; ``close`` removes counters left armed.
        """
        raise EnvironmentProblem(f"target {self.name!r} cannot count knob hits; use --no-select")

    def stop_counting(self, token: str) -> Counts:
        """Hits per knob since ``start_counting``; every counter of ``token`` is removed."""
        raise EnvironmentProblem(f"target {self.name!r} has no counting session {token!r}")

    @abstractmethod
    def close(self) -> None:
        """Revert knobs, stop every process (and counter) this target started, remove workdirs."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
