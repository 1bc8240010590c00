"""A private PostgreSQL server for tests of ``--storage postgresql://...``.

Debian's system cluster may or may not run (and is not ours to touch), so each test session
starts its own: initdb into a temp dir, loopback-only on a free port, trust auth, stopped and
deleted on teardown whatever happened. Root cannot run postgres, so as root the server runs
as the ``postgres`` user the Debian package creates.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import pytest

from kernel_runtime.processes import free_loopback_port

BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "autotune"
DATABASE = "autotune"
# Loopback only: the unix socket in the temp dir and 127.0.0.1; nobody else can reach it.
HBA = "local all all trust\nhost all all 127.0.0.1/32 trust\n"


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], cwd: Path) -> None:
    res = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _stop(root: Path, data: Path, pid: int | None) -> None:
    """pg_ctl's fast shutdown; if the server outlives it, SIGKILL it and its backends by PID."""
    if (data / "postmaster.pid").exists():
        subprocess.run(_as_server_user([str(BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                                        "-t", "20", "stop"]), cwd=root, capture_output=True,
                       timeout=60)
    if pid is None:
        return
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(procs, timeout=10)


@contextmanager
def private_postgres() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh, empty database on a private server."""
    root = Path(tempfile.mkdtemp(prefix="autotune-pg-"))
    data, pid = root / "data", None
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)
        _run(_as_server_user([str(BIN / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust",
                              "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]), root)
        (data / "pg_hba.conf").write_text(HBA)
        port = free_loopback_port()
        # Durability is irrelevant for a throw-away server; skipping fsync keeps the tests quick.
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        log = root / "server.log"
        try:
            _run(_as_server_user([str(BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                                  "-w", "-t", "30", "start"]), root)
        except RuntimeError as e:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(none)"
            raise RuntimeError(f"{e}\nserver log:\n{tail}") from None
        pid = _postmaster_pid(data)
        _run([str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, DATABASE],
             root)
        yield f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"
    finally:
        _stop(root, data, pid if pid is not None else _postmaster_pid(data))
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """One private server per test module (stopped as soon as it is done); tests keep apart by study name."""
    with private_postgres() as url:
        yield url
