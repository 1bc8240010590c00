"""The on-disk write journal: every kernel change is recorded before it happens.

Entries are JSON lines appended and fsynced before the write they describe. A *session*
groups the writes of one owner: a study (``transient``: reverted when it ends, or at the
next start if its process died) or an applied policy (``policy``: kept until ``revert``).
Reverting replays a session's writes backwards, so the state ends where it was found.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psutil

SessionKind = Literal["transient", "policy"]


@dataclass
class Entry:
    session: str
    kind: SessionKind
    pid: int
    started: float
    knob: str
    backend: str
    spec: dict[str, Any]
    scope: dict[str, Any]
    old: Any
    new: Any


class Journal:
    """Append-only journal file with an advisory lock for cross-process safety."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_path = path.with_suffix(".lock")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise journal users across processes (controller, apply, revert)."""
        with open(self._lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def new_session(self, kind: SessionKind) -> str:
        return f"{kind}-{uuid.uuid4().hex[:12]}"

    def record(self, entry: Entry) -> None:
        """Append and fsync before the caller touches the kernel."""
        line = json.dumps({"op": "set", **entry.__dict__, "ts": time.time()})
        self._append(line)

    def close_session(self, session: str) -> None:
        self._append(json.dumps({"op": "done", "session": session, "ts": time.time()}))

    def _append(self, line: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def open_entries(self) -> dict[str, list[Entry]]:
        """Writes of every session not yet closed, in the order they were made."""
        sessions: dict[str, list[Entry]] = {}
        closed: set[str] = set()
        if not self.path.exists():
            return {}
        for raw in self.path.read_text().splitlines():
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                continue  # a torn final line from a crash mid-append: its write never happened
            if rec.get("op") == "done":
                closed.add(rec["session"])
            elif rec.get("op") == "set":
                fields = {k: rec[k] for k in Entry.__dataclass_fields__}
                sessions.setdefault(rec["session"], []).append(Entry(**fields))
        return {s: e for s, e in sessions.items() if s not in closed}

    def compact(self) -> None:
        """Drop closed sessions (atomic replace) so the file does not grow without bound."""
        keep = self.open_entries()
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            for entries in keep.values():
                for e in entries:
                    fh.write(json.dumps({"op": "set", **e.__dict__, "ts": time.time()}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def owner_alive(entry: Entry) -> bool:
    """True when the process that opened the session still runs (pid reuse checked)."""
    try:
        proc = psutil.Process(entry.pid)
        return abs(proc.create_time() - entry.started) < 1.0
    except psutil.Error:
        return False
