"""The agent as it runs on a host: a real process on loopback, spoken to by the real client.

No kernel writes here (those are in the lab tests); this checks authentication, error
transport and that a slow call never holds up a renewal on the same connection.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autotune.core.errors import AutotuneError, BadInputError
from kernel_runtime.agent.client import AgentClient
from kernel_runtime.processes import free_loopback_port

TOKEN = "test-token-0123"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("agent")
    (tmp / "token").write_text(TOKEN + "\n")
    port = free_loopback_port()
    proc = subprocess.Popen([sys.executable, "-m", "kernel_runtime.agent", "--listen",
                             f"127.0.0.1:{port}", "--token-file", str(tmp / "token")],
                            env={"AUTOTUNE_STATE_DIR": str(tmp / "state"), "PATH": "/usr/bin:/bin",
                                 "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                probe = AgentClient("127.0.0.1", port, TOKEN)
                probe.connect(timeout=2)
                probe.close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "agent did not start"
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def test_wrong_token_is_refused(agent: int) -> None:
    with pytest.raises(AutotuneError, match="wrong token"):
        AgentClient("127.0.0.1", agent, "not-the-token").connect()


def test_hello_reports_kernel_and_features(agent: int) -> None:
    client = AgentClient("127.0.0.1", agent, TOKEN)
    info = client.connect()
    client.close()
    assert info["kernel"]["release"] == Path("/proc/sys/kernel/osrelease").read_text().strip()
    assert set(info["features"]) >= {"kprobes", "modules", "btf", "kprobe_kfuncs", "missing"}


def test_agent_errors_keep_their_class(agent: int) -> None:
    client = AgentClient("127.0.0.1", agent, TOKEN)
    client.connect()
    try:
        with pytest.raises(BadInputError, match="no method 'format_disk'"):
            client.call("format_disk")
        with pytest.raises(BadInputError, match="bad parameters"):
            client.call("which", binary="sh")
        assert client.call("which", program="sh") is not None
    finally:
        client.close()


def test_slow_call_does_not_block_renewal(agent: int) -> None:
    client = AgentClient("127.0.0.1", agent, TOKEN)
    client.connect()
    result: dict[str, object] = {}
    slow = threading.Thread(target=lambda: result.update(
        run=client.call("run", argv=["sleep", "2"], timeout=10)))
    try:
        slow.start()
        time.sleep(0.3)
        assert client.call("renew") == {"lease": 5.0}
        assert "run" not in result  # the renewal was answered while the run was in flight
        slow.join()
        assert result["run"]["returncode"] == 0  # type: ignore[index]
    finally:
        client.close()
