"""Client side of the agent RPC: many threads share one connection, matched by request id.

A reader thread routes replies to waiting callers, so the lease renewer can speak while a
60-second ``run`` is in flight. When the target dies, ``fail`` wakes every caller at once
with the reason: nobody waits for a timeout on a kernel that has already panicked.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from typing import Any

from autotune.core.errors import AutotuneError, TargetCrashed
from kernel_runtime.agent.protocol import (
    MAX_LINE,
    PROTOCOL_VERSION,
    ProtocolError,
    decode,
    encode,
    raise_remote,
)


class _Pending:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: dict[str, Any] = {}
        self.failure: AutotuneError | None = None


class AgentClient:
    """One authenticated connection (one agent session) to an agent."""

    def __init__(self, host: str, port: int, token: str, *, lease: float = 5.0) -> None:
        self.address = (host, port)
        self._token = token
        self._lease = lease
        self.info: dict[str, Any] = {}
        self._sock: socket.socket | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._failure: AutotuneError | None = None

    def connect(self, timeout: float = 10.0) -> dict[str, Any]:
        """Open the connection and say hello; returns the agent's hello facts."""
        sock = socket.create_connection(self.address, timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(encode({"id": 0, "method": "hello", "params": {
                "token": self._token, "lease": self._lease, "protocol": PROTOCOL_VERSION}}))
            rfile = sock.makefile("rb")
            line = rfile.readline(MAX_LINE)
            if not line:
                raise ConnectionResetError("agent closed the connection during hello")
            reply = decode(line)
            if "error" in reply:
                raise_remote(reply["error"], "hello")
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        self._sock = sock
        self.info = reply["result"]
        threading.Thread(target=self._read, args=(rfile,), name="agent-reader", daemon=True).start()
        return self.info

    def _read(self, rfile: Any) -> None:
        try:
            while line := rfile.readline(MAX_LINE):
                reply = decode(line)
                with self._lock:
                    waiter = self._pending.pop(int(reply.get("id", -1)), None)
                if waiter is not None:
                    waiter.reply = reply
                    waiter.done.set()
        except (OSError, ValueError, ProtocolError):
            pass
        self.fail(TargetCrashed("the connection to the agent closed"))

    def fail(self, failure: AutotuneError) -> None:
        """Fail every pending and future call with ``failure`` (the first reason wins)."""
        with self._lock:
            if self._failure is None:
                self._failure = failure
            waiters = list(self._pending.values())
            self._pending.clear()
        for w in waiters:
            w.failure = self._failure
            w.done.set()

    @property
    def failed(self) -> AutotuneError | None:
        return self._failure

    def call(self, method: str, *, wait: float = 120.0, **params: Any) -> Any:
        """Send one request and wait up to ``wait`` s for its reply.

        Agent errors re-raise as their own class.
        """
        waiter = _Pending()
        with self._lock:
            if self._failure is not None:
                raise type(self._failure)(str(self._failure))
            if self._sock is None:
                raise AutotuneError("agent client used before connect()")
            rid = next(self._ids)
            self._pending[rid] = waiter
            try:
                self._sock.sendall(encode({"id": rid, "method": method, "params": params}))
            except OSError:
                self._pending.pop(rid, None)
                raise TargetCrashed(f"cannot send {method} to the agent: connection lost") from None
        if not waiter.done.wait(wait):
            with self._lock:
                self._pending.pop(rid, None)
            raise TargetCrashed(f"the agent did not answer {method} within {wait:.0f} s")
        if waiter.failure is not None:
            raise type(waiter.failure)(str(waiter.failure))
        if "error" in waiter.reply:
            raise_remote(waiter.reply["error"], method)
        return waiter.reply.get("result")

    def close(self) -> None:
        """Say goodbye (the agent closes the session) and drop the connection."""
        if self._sock is None:
            return
        if self._failure is None:
            with contextlib.suppress(AutotuneError):
                self.call("close", wait=10)
        self.fail(AutotuneError("agent client closed"))
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._sock = None
