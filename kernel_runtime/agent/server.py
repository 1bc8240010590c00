"""The agent process: authenticated JSON-lines RPC over TCP, one session per connection.

The same program runs inside the lab VM (reached through QEMU's host-forwarded port) and
on a host (on loopback). Every request runs in its own thread so a long ``run`` never
delays a lease renewal or a heartbeat on the same connection. A watcher thread enforces
leases: a session nobody renews has its knobs reset, and is closed once its client is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import logging
import os
import socket
import socketserver
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from autotune.core.errors import AutotuneError, BadInputError
from autotune.core.kernel import running_kernel
from kernel_runtime.agent.protocol import (
    MAX_LINE,
    PROTOCOL_VERSION,
    ProtocolError,
    decode,
    encode,
    error_payload,
)
from kernel_runtime.agent.session import DEFAULT_LEASE, Session
from kernel_runtime.features import probe_features

log = logging.getLogger("autotune-agent")
WATCH_INTERVAL = 0.2
WORKERS = 32  # concurrent slow requests (runs, applies) across all sessions
# Answered on the connection's own thread: cheap and never blocking. Everything else goes
# to the worker pool, so a slow call cannot hold up a renewal behind it (a pool, because
# starting a thread costs ~13 ms in the TCG guest).
INLINE = {"health", "renew", "alive", "cpu_seconds", "which", "cpu_count", "free_port",
          "kernel", "status", "make_workdir"}


def _read(path: str) -> str:
    """Binary read + decode: a text-mode open costs ~1 ms in the TCG guest, this ~0.05 ms."""
    try:
        return Path(path).read_bytes().decode().strip()
    except OSError:
        return ""


class Agent:
    """Sessions, their leases, and the facts every client asks for first."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.instance = uuid.uuid4().hex[:12]
        self.sessions: dict[str, Session] = {}
        self.lapses: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")
        self.workers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="request")
        threading.Thread(target=self._watch_leases, name="lease-watcher", daemon=True).start()

    def hello(self, params: dict[str, Any]) -> tuple[Session, dict[str, Any]]:
        if not hmac.compare_digest(str(params.get("token", "")), self.token):
            raise ProtocolError("agent: wrong token (each lab boot has its own)")
        if params.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError(f"agent speaks protocol {PROTOCOL_VERSION}, client "
                                f"{params.get('protocol')}: rebuild the lab ('autotune lab build')")
        session = Session(spawner=self._spawner, lease=float(params.get("lease", DEFAULT_LEASE)))
        with self._lock:
            self.sessions[session.id] = session
        info = {"protocol": PROTOCOL_VERSION, "session": session.id, "agent": self.instance,
                "pid": os.getpid(), "boot_id": _read("/proc/sys/kernel/random/boot_id"),
                "kernel": running_kernel().model_dump(),
                "features": probe_features().to_json(), "python": sys.version.split()[0]}
        return session, info

    def health(self) -> dict[str, Any]:
        load = _read("/proc/loadavg").split()
        with self._lock:
            sessions = len(self.sessions)
        return {"uptime": float(_read("/proc/uptime").split()[0] or 0),
                "loadavg": [float(x) for x in load[:3]], "tainted": int(_read(
                    "/proc/sys/kernel/tainted") or 0), "sessions": sessions,
                "lease_lapses": list(self.lapses[-10:]), "time": time.time()}

    def _watch_leases(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            now = time.monotonic()
            with self._lock:
                sessions = list(self.sessions.values())
            for s in sessions:
                try:
                    if not s.expired and now > s.deadline and s.lapse():
                        self.lapses.append(f"{time.time():.3f} session {s.id}")
                        log.warning("lease of session %s lapsed: knobs reset", s.id)
                    if s.expired and not s.connected:
                        self.drop(s)
                except (OSError, AutotuneError) as e:
                    log.error("lease watcher: session %s: %s", s.id, e)

    def drop(self, session: Session) -> None:
        with self._lock:
            self.sessions.pop(session.id, None)
        session.close()


class _Connection(socketserver.StreamRequestHandler):
    """One client connection: hello first, then concurrent requests."""

    server: _Server

    def handle(self) -> None:
        agent = self.server.agent
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._wlock = threading.Lock()
        first = self.rfile.readline(MAX_LINE)
        if not first:
            return
        try:
            msg = decode(first)
            if msg.get("method") != "hello":
                raise ProtocolError("agent: the first request must be 'hello'")
            session, info = agent.hello(msg.get("params") or {})
        except (AutotuneError, ValueError) as e:
            self._send({"id": 0, "error": error_payload(e)})
            return
        self._send({"id": msg.get("id", 0), "result": info})
        try:
            while line := self.rfile.readline(MAX_LINE):
                req = decode(line)
                if req.get("method") in INLINE:
                    self._serve(agent, session, req)
                else:
                    agent.workers.submit(self._serve, agent, session, req)
        except (OSError, ProtocolError):
            pass
        finally:
            session.connected = False

    def _serve(self, agent: Agent, session: Session, req: dict[str, Any]) -> None:
        rid, method = req.get("id"), str(req.get("method"))
        try:
            if method == "health":
                result: Any = agent.health()
            elif method == "close":
                agent.drop(session)
                result = None
            else:
                result = session.call(method, req.get("params") or {})
            reply: dict[str, Any] = {"id": rid, "result": result}
        except (AutotuneError, OSError, ValueError) as e:
            reply = {"id": rid, "error": error_payload(e)}
        except Exception as e:  # an agent bug must reach the caller, not kill the agent
            log.exception("agent method %s failed", method)
            reply = {"id": rid, "error": error_payload(e)}
        self._send(reply)

    def _send(self, message: dict[str, Any]) -> None:
        with self._wlock:
            try:
                self.wfile.write(encode(message))
                self.wfile.flush()
            except (OSError, ValueError):  # the client went away: nobody to tell
                pass


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], agent: Agent) -> None:
        super().__init__(address, _Connection)
        self.agent = agent


def serve(listen: str, token: str) -> None:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise BadInputError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:7070")
    agent = Agent(token)
    with _Server((host, int(port)), agent) as server:
        print(f"autotune-agent: listening on {listen}", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        finally:
            for s in list(agent.sessions.values()):
                agent.drop(s)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kernel_runtime.agent",
                                     description="The kernel autotune agent (lab VM or host).")
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    parser.add_argument("--token-file", required=True, help="file holding the shared token")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="autotune-agent: %(message)s")
    token = Path(args.token_file).read_text().strip()
    if not token:
        sys.exit(f"autotune-agent: {args.token_file} is empty: it must hold the session token")
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.listen, token)
