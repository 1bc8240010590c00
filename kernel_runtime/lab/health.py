"""Lab health: the guest's kernel log read as it streams in, a heartbeat, and QEMU's pulse.

Three independent signals, because each misses something: a panic ends QEMU (panic=-1
with -no-reboot) and leaves its reason on the serial console; a soft lockup or RCU stall
is only a console line; a wedged guest says nothing at all and is caught by the heartbeat
going silent. The first fatal signal wins and is reported once, with its reason.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HEARTBEAT_EVERY = 1.0
HANG_AFTER = 6.0  # seconds without a heartbeat reply: with polling, detection stays < 10 s
POLL = 0.25
WHERE_WAIT = 2.0  # after a fatal line, how long to wait for the oops' RIP line to land

# The faulting instruction of an oops (printed a few lines after the "Oops:" line).
RIP = re.compile(r"RIP: 00\d\d:(\S+)")

# (pattern, severity, reason template); first match wins, so specific patterns go first.
PATTERNS: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(r"Kernel panic - not syncing: (.*)"), "fatal", "kernel panic: {0}"),
    (re.compile(r"BUG: soft lockup - (CPU#\d+) stuck for (\d+s)"), "fatal",
     "soft lockup on {0} (stuck {1})"),
    (re.compile(r"Watchdog detected hard LOCKUP on cpu (\d+)"), "fatal", "hard lockup on CPU {0}"),
    (re.compile(r"rcu: INFO: (\S+) (?:self-)?detected stalls? on CPUs?"), "fatal",
     "RCU stall ({0})"),
    (re.compile(r"(?:kernel BUG at (\S+)|BUG: (.+))"), "fatal", "kernel BUG: {0}"),
    (re.compile(r"Oops: (.*)"), "fatal", "kernel oops: {0}"),
    (re.compile(r"WARNING: CPU: \d+ PID: \d+ at (\S+)"), "warning", "kernel WARN at {0}"),
    (re.compile(r"INFO: task (\S+) blocked for more than (\d+) seconds"), "warning",
     "hung task {0} (blocked > {1} s)"),
]


@dataclass(frozen=True)
class KernelEvent:
    severity: str  # "fatal" | "warning"
    reason: str
    line: str
    at: float


def classify(line: str) -> KernelEvent | None:
    """Recognise a kernel log line that signals trouble."""
    for pattern, severity, template in PATTERNS:
        m = pattern.search(line)
        if m:
            groups = [g for g in m.groups() if g is not None] or [line.strip()]
            return KernelEvent(severity, template.format(*groups, *[""] * 2).strip(),
                               line.strip(), time.time())
    return None


class Watchdog:
    """Watches one boot of a lab; calls ``on_fatal(reason)`` once when it dies or hangs."""

    def __init__(self, *, console: Path, alive: Callable[[], bool],
                 heartbeat: Callable[[], object], on_fatal: Callable[[str], None]) -> None:
        self._console = console
        self._alive = alive
        self._heartbeat = heartbeat
        self._on_fatal = on_fatal
        self._offset = 0
        self._partial = ""
        self._last_beat = time.monotonic()
        self._stop = threading.Event()
        self.events: list[KernelEvent] = []
        self.where: str | None = None  # the RIP of the first fatal event, once printed
        self._fatal_seen_at: float | None = None
        self.verdict: str | None = None
        self._threads = [threading.Thread(target=self._watch, name="lab-watchdog", daemon=True),
                         threading.Thread(target=self._beat, name="lab-heartbeat", daemon=True)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5)

    def _read_console(self) -> None:
        try:
            with open(self._console, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except OSError:
            return
        self._offset += len(chunk)
        text = self._partial + chunk.decode(errors="replace")
        *lines, self._partial = text.split("\n")
        for line in lines:
            event = classify(line)
            if event is not None:
                self.events.append(event)
                if event.severity == "fatal" and self._fatal_seen_at is None:
                    self._fatal_seen_at = time.monotonic()
            elif self._fatal_seen_at is not None and self.where is None \
                    and (m := RIP.search(line)):
                self.where = m.group(1)

    def _fatal_reason(self) -> str | None:
        """The first fatal line: an oops or lockup is the cause, the panic after it the effect."""
        fatal = [e for e in self.events if e.severity == "fatal"]
        if not fatal:
            return None
        return f"{fatal[0].reason} at {self.where}" if self.where else fatal[0].reason

    def _where_pending(self) -> bool:
        """A fatal line came in but its RIP line may still be on its way (worth a moment)."""
        return (self.where is None and self._fatal_seen_at is not None
                and time.monotonic() - self._fatal_seen_at < WHERE_WAIT)

    def _declare(self, reason: str) -> None:
        if self.verdict is None and not self._stop.is_set():
            self.verdict = reason
            self._stop.set()
            self._on_fatal(reason)

    def _watch(self) -> None:
        while not self._stop.wait(POLL):
            self._read_console()
            if not self._alive():
                time.sleep(POLL)  # let QEMU's last console bytes land
                self._read_console()
                self._declare(self._fatal_reason() or "the lab VM exited unexpectedly")
            elif (reason := self._fatal_reason()) is not None and not self._where_pending():
                self._declare(reason)
            elif time.monotonic() - self._last_beat > HANG_AFTER:
                self._declare(f"guest hung: no heartbeat for {HANG_AFTER:.0f} s")

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            try:
                self._heartbeat()
                self._last_beat = time.monotonic()
            except Exception:  # noqa: BLE001 - any failure is simply a missed beat
                continue
