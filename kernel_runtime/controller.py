"""The only path from a requested value to the kernel: validate, journal, write, revert.

Every backend is driven through here so that domain checks, the journal and
revert-on-failure hold for all of them. The controller keeps no trial state of its own
beyond the open session id: the journal on disk is the truth, which is what makes
restore-on-start after a SIGKILL possible.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import psutil

from autotune.core.catalog import Knob
from autotune.core.errors import AutotuneError, BadInputError, EnvironmentProblem, KnobRejected
from kernel_runtime.backend import GLOBAL, Backend, KnobState, Scope
from kernel_runtime.journal import Entry, Journal, SessionKind, owner_alive
from kernel_runtime.kernel_lock import KernelLock


class KnobController:
    """Applies and reverts knob values through backends, journaled on disk."""

    def __init__(self, *, backends: Mapping[str, Backend], journal: Journal,
                 kind: SessionKind = "transient", lock: KernelLock | None = None) -> None:
        self.backends = dict(backends)
        self.lock = lock
        self.journal = journal
        self.kind: SessionKind = kind
        self._session: str | None = None
        self._loaded: set[str] = set()
        self._started = psutil.Process().create_time()

    def backend_for(self, knob: Knob) -> Backend:
        try:
            return self.backends[knob.backend]
        except KeyError:
            raise EnvironmentProblem(
                f"knob {knob.name!r} needs the {knob.backend} backend, which this target lacks") from None

    def usable(self, knobs: list[Knob]) -> tuple[list[Knob], list[tuple[str, str]]]:
        """Split knobs into those that work here and (name, reason) for those left out."""
        ok: list[Knob] = []
        left: list[tuple[str, str]] = []
        for knob in knobs:
            backend = self.backends.get(knob.backend)
            reason = (f"no {knob.backend} backend on this target" if backend is None
                      else backend.unavailable_reason(knob))
            if reason:
                left.append((knob.name, reason))
            else:
                ok.append(knob)
        return ok, left

    def apply(self, values: Mapping[str, int], knobs: Mapping[str, Knob],
              scope: Scope = GLOBAL) -> None:
        """Set every value or none: validate all first, undo this batch on any failure."""
        for name, value in values.items():
            if name not in knobs:
                raise BadInputError(f"unknown knob {name!r}; known: {', '.join(sorted(knobs))}")
            knobs[name].domain.check(name, int(value))
        if self.lock:
            self.lock.acquire()
        with self.journal.locked():
            pending: list[Entry] = []
            try:
                for name, value in values.items():
                    pending.append(self._write(knobs[name], int(value), scope))
            except BaseException:
                self._replay_backwards(pending)
                raise

    def _write(self, knob: Knob, value: int, scope: Scope) -> Entry:
        backend = self.backend_for(knob)
        if knob.name not in self._loaded:
            backend.load(knob)
            self._loaded.add(knob.name)
        if self._session is None:
            self._session = self.journal.new_session(self.kind)
        entry = Entry(session=self._session, kind=self.kind, pid=os.getpid(),
                      started=self._started, knob=knob.name, backend=knob.backend,
                      spec=knob.model_dump(mode="json"), scope=scope.to_json(),
                      old=backend.read(knob, scope), new=value)
        self.journal.record(entry)
        try:
            backend.set(knob, value, scope)
        except OSError as e:
            # the journal entry stays: the caller's batch undo restores the old value
            raise KnobRejected(f"kernel rejected {knob.name}={value} ({e.strerror or e}); "
                               "narrow its domain in the catalog") from e
        return entry

    def _replay_backwards(self, entries: list[Entry]) -> list[str]:
        """Restore each entry's old state, newest first; return the errors met."""
        errors: list[str] = []
        for e in reversed(entries):
            knob = Knob.model_validate(e.spec)
            backend = self.backends.get(e.backend)
            if backend is None:
                errors.append(f"{e.knob}: no {e.backend} backend to restore it")
                continue
            try:
                backend.restore(knob, e.old, Scope.from_json(e.scope))
            except (OSError, AutotuneError) as exc:
                errors.append(f"{e.knob}: {exc}")
        return errors

    def revert(self) -> None:
        """Undo everything this controller's session wrote and close the session."""
        if self._session is None:
            return
        with self.journal.locked():
            entries = self.journal.open_entries().get(self._session, [])
            errors = self._replay_backwards(entries)
            if errors:
                raise AutotuneError(f"revert incomplete: {'; '.join(errors)}; "
                                    "retry with 'autotune revert'")
            self.journal.close_session(self._session)
            self._session = None

    def recover(self, *, include_policies: bool = False) -> list[str]:
        """Revert sessions left open by dead owners (and applied policies if asked).

        Returns the names of the knobs restored, for the caller to report.
        """
        restored: list[str] = []
        if self.lock:
            self.lock.acquire()
        with self.journal.locked():
            for session, entries in self.journal.open_entries().items():
                if session == self._session:
                    continue
                kind = entries[0].kind
                alive = owner_alive(entries[0])
                if (kind == "transient" and not alive) or (kind == "policy" and include_policies):
                    errors = self._replay_backwards(entries)
                    if errors:
                        raise AutotuneError(f"could not restore session {session}: {'; '.join(errors)}")
                    self.journal.close_session(session)
                    restored.extend(e.knob for e in entries)
            self.journal.compact()
        return sorted(set(restored))

    def status(self) -> list[KnobState]:
        out: list[KnobState] = []
        for backend in self.backends.values():
            out.extend(backend.status())
        return out

    def close(self) -> None:
        """Revert and detach: called on exit, error and signals."""
        try:
            self.revert()
            with self.journal.locked():
                self.journal.compact()
        finally:
            for backend in self.backends.values():
                backend.unload()
            self._loaded.clear()
            if self.lock:
                self.lock.release()

