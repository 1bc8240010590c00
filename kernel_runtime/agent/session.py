"""One client's session on the agent: a local target, its knob controller and its lease.

Each connection gets its own ``HostTarget`` (its own journal session and process table),
so two clients never revert each other's writes. The lease is what makes a lost
controller harmless: when nobody renews it, the session's knobs go back to what they were.
"""

from __future__ import annotations

import base64
import inspect
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict
from typing import Any

from autotune.core.catalog import Knob
from autotune.core.errors import BadInputError, LeaseLapsed
from kernel_runtime.backend import Scope
from kernel_runtime.features import probe_features
from kernel_runtime.host import HostTarget
from kernel_runtime.sie import SieBackend, artifacts
from kernel_runtime.target import ProcessHandle

DEFAULT_LEASE = 5.0
# Methods that are about the session itself and must work even after a lapse.
HOUSEKEEPING = {"renew", "health", "close"}


def _knobs(raw: list[dict[str, Any]]) -> list[Knob]:
    return [Knob.model_validate(k) for k in raw]


class Session:
    """What one client may do on the agent, bounded by its lease."""

    def __init__(self, *, spawner: Executor, lease: float = DEFAULT_LEASE) -> None:
        if not 0.5 <= lease <= 3600:
            raise BadInputError(f"lease {lease} s outside [0.5, 3600]")
        self.id = uuid.uuid4().hex[:12]
        self._target: HostTarget | None = None
        self._target_lock = threading.Lock()
        self.lease = lease
        self._spawner = spawner
        self.deadline = time.monotonic() + lease
        self.connected = True
        self.expired = False
        self._lapse_note: str | None = None
        self._knob_lock = threading.Lock()
        self._handles: dict[int, ProcessHandle] = {}
        self._written: set[str] = set()  # knobs applied since the last revert
        self._signatures: dict[str, inspect.Signature] = {}
        self.methods: dict[str, Callable[..., Any]] = {
            "renew": self.renew, "kernel": lambda: self.target.kernel().model_dump(),
            "features": lambda: probe_features().to_json(),
            "knobs": lambda: [k.model_dump(mode="json") for k in self.target.knobs()],
            "usable": self.usable, "apply": self.apply, "revert": self.revert,
            "recover": self.recover, "status": self.status,
            "cpu_count": lambda: self.target.cpu_count(),
            "which": lambda program: self.target.which(program),
            "make_workdir": lambda prefix: self.target.make_workdir(prefix),
            "write_file": lambda path, text: self.target.write_file(path, text),
            "free_port": lambda: self.target.free_port(),
            "port_open": lambda port: self.target.port_open(port), "spawn": self.spawn, "run": self.run,
            "alive": self.alive, "cpu_seconds": self.cpu_seconds, "stop": self.stop,
            "sie_options": self.sie_options, "sie_missing": self.sie_missing,
            "sie_store": self.sie_store, "count_start": self.count_start,
            "count_stop": self.count_stop,
        }

    @property
    def target(self) -> HostTarget:
        """Made on first use: building the controller (SIE catalog included) takes ~0.7 s in
        the TCG guest, and heartbeat or status sessions never need it."""
        with self._target_lock:
            if self._target is None:
                self._target = HostTarget()
            return self._target

    def call(self, method: str, params: dict[str, Any]) -> Any:
        if method not in HOUSEKEEPING:
            self.renew()
            note, self._lapse_note = self._lapse_note, None
            if note:
                raise LeaseLapsed(note)
        fn = self.methods.get(method)
        if fn is None:
            raise BadInputError(f"agent has no method {method!r}; known: {', '.join(self.methods)}")
        try:
            self._signatures.setdefault(method, inspect.signature(fn)).bind(**params)
        except TypeError as e:
            raise BadInputError(f"agent method {method}: bad parameters ({e})") from None
        return fn(**params)

    def renew(self, lease: float | None = None) -> dict[str, float]:
        if lease is not None:
            self.lease = float(lease)
        self.deadline = time.monotonic() + self.lease
        self.expired = False
        return {"lease": self.lease}

    def lapse(self) -> int:
        """Called by the agent's watcher when the deadline passed: reset every knob.

        Returns how many knobs were reset; the client's next call learns of it once.
        """
        self.expired = True
        if self._target is None:
            return 0
        with self._knob_lock:
            written = len(self._written)
            self.target.control.revert()
            self._written.clear()
        if written:
            self._lapse_note = (f"lease of {self.lease:g} s lapsed: the agent reset {written} "
                                "knob(s) to their previous values; this result is void")
        self._target.counting.close()  # an armed counter nobody will read is a leak
        return written

    def usable(self, knobs: list[dict[str, Any]]) -> dict[str, Any]:
        ok, left = self.target.control.usable(_knobs(knobs))
        return {"ok": [k.model_dump(mode="json") for k in ok], "left": left}

    def apply(self, values: dict[str, int], knobs: dict[str, dict[str, Any]],
              scope: dict[str, Any]) -> None:
        with self._knob_lock:
            self.target.control.apply(values, {n: Knob.model_validate(k) for n, k in knobs.items()},
                                      Scope.from_json(scope))
            self._written.update(values)

    def revert(self) -> None:
        with self._knob_lock:
            self.target.control.revert()
            self._written.clear()

    def recover(self, include_policies: bool = False) -> list[str]:
        with self._knob_lock:
            return self.target.control.recover(include_policies=include_policies)

    def status(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.target.control.status()]

    def _sie(self) -> SieBackend | None:
        backend = self.target.control.backends.get("sie")
        return backend if isinstance(backend, SieBackend) else None

    def sie_options(self, allow_unverified_sites: bool) -> None:
        """The user's explicit override of the oracle rule, for this session's knobs."""
        if (sie := self._sie()) is not None:
            sie.allow_unverified = bool(allow_unverified_sites)

    def sie_missing(self, knobs: list[dict[str, Any]]) -> list[dict[str, str]]:
        """The C of every site program these knobs need that the guest has no object for."""
        sie = self._sie()
        missing = sie.missing_objects(_knobs(knobs)) if sie is not None else []
        return [{"template": r.template, "source": r.source} for r in missing]

    def sie_store(self, objects: dict[str, str]) -> None:
        """Objects compiled by the host for ``sie_missing``, base64 by name."""
        sie = self._sie()
        if sie is None:
            raise BadInputError("no SIE backend on this target: nothing to store objects for")
        artifacts.store_objects(sie.release, {n: base64.b64decode(b) for n, b in objects.items()})

    def count_start(self, knobs: list[dict[str, Any]]) -> str:
        return self.target.start_counting(_knobs(knobs))

    def count_stop(self, token: str) -> dict[str, Any]:
        return self.target.stop_counting(token).to_json()

    def spawn(self, argv: list[str], cpus: list[int] | None = None, cwd: str | None = None) -> int:
        """Fork on the agent's one long-lived spawner thread.

        Children get a parent-death signal, which Linux ties to the forking *thread*: forked
        from a short-lived request thread, a server would die as soon as that thread ends.
        """
        handle = self._spawner.submit(self.target.spawn, argv, cpus=cpus, cwd=cwd).result()
        self._handles[handle.ident] = handle
        return handle.ident

    def run(self, argv: list[str], timeout: float, cpus: list[int] | None = None,
            cwd: str | None = None) -> dict[str, Any]:
        return asdict(self.target.run(argv, timeout=timeout, cpus=cpus, cwd=cwd))

    def _handle(self, ident: int) -> ProcessHandle | None:
        return self._handles.get(ident)

    def alive(self, ident: int) -> bool:
        handle = self._handle(ident)
        return handle is not None and self.target.alive(handle)

    def cpu_seconds(self, ident: int) -> float:
        handle = self._handle(ident)
        return 0.0 if handle is None else self.target.cpu_seconds(handle)

    def stop(self, ident: int, grace: float = 5.0) -> None:
        handle = self._handles.pop(ident, None)
        if handle is not None:
            self.target.stop(handle, grace=grace)

    def close(self) -> None:
        """Revert knobs, stop processes, remove workdirs: the client is done or gone."""
        if self._target is not None:
            with self._knob_lock:
                self._target.close()
        self._handles.clear()
