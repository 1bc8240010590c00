"""The redis workload: output parsing, CPU split, and a real server + load generator."""

from __future__ import annotations

import socket

import psutil
import pytest

from autotune.core.errors import BadInputError, EnvironmentProblem, MeasurementError
from kernel_runtime.host import HostTarget
from workloads import make_workload
from workloads.redis import RedisOptions, aggregate, parse_csv, split_cpus

CSV = '''"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"SET","80000.00","0.397","0.096","0.367","0.639","0.919","3.647"
"GET","120000.00","0.400","0.096","0.375","0.567","0.775","4.935"
'''


def test_parse_csv_and_aggregate() -> None:
    samples = parse_csv(CSV)
    assert [s.name for s in samples] == ["SET", "GET"]
    assert samples[0].p99_ms == pytest.approx(0.919)
    thr, p50, _, p99 = aggregate(samples, 1000)
    assert thr == pytest.approx(2000 / (1000 / 80000 + 1000 / 120000))
    assert p99 == pytest.approx((0.919 + 0.775) / 2) and p50 == pytest.approx(0.371)


@pytest.mark.parametrize("text", ["", "garbage", '"test","rps"\n"SET","inf"\n'])
def test_unreadable_output_is_a_measurement_error(text: str) -> None:
    with pytest.raises(MeasurementError):
        parse_csv(text)


def test_cpu_split_is_disjoint() -> None:
    assert split_cpus(1) == (None, None)
    server, bench = split_cpus(4)
    assert server == [0] and bench == [1, 2, 3]


def test_host_port_probe_sees_a_listener() -> None:
    with HostTarget() as host, socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        assert host.port_open(port)
        listener.close()
        assert not host.port_open(port)


def test_bad_options_are_refused() -> None:
    with pytest.raises(BadInputError, match="unknown options"):
        make_workload("redis", {"colour": "blue"})
    with pytest.raises(BadInputError, match="tests"):
        RedisOptions(tests="set,teleport").validate()
    with pytest.raises(BadInputError, match="unknown workload"):
        make_workload("oracle-db")


def redis_children() -> list[psutil.Process]:
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if "redis" in " ".join(p.cmdline())]


@pytest.mark.redis
def test_real_redis_measurement_and_cleanup() -> None:
    target = HostTarget()
    workload = make_workload("redis", {"tests": "set,get", "clients": 20, "keyspace": 10000})
    try:
        workload.setup(target)
        m = workload.run(target, 1.0)
        assert m.throughput > 1000
        assert 0 < m.p50_ms <= m.p95_ms <= m.p99_ms
        assert [s.name for s in m.samples] == ["SET", "GET"]
        assert m.provenance["kernel_build_id"] == target.kernel().build_id
        assert m.provenance["tools"]["redis-server"].startswith("Redis server")
        assert m.server_cpu_s is not None and m.server_cpu_s > 0
        assert redis_children(), "the server should be running during the study"
    finally:
        workload.teardown()
        target.close()
    assert redis_children() == []


class FakeTargetWithoutRedis(HostTarget):
    """A host target whose PATH lacks redis: a fake of the layer below, named as such."""

    def which(self, program: str) -> str | None:
        return None


def test_missing_redis_names_the_apt_command() -> None:
    target = FakeTargetWithoutRedis()
    try:
        with pytest.raises(EnvironmentProblem, match="apt-get install -y redis-server redis-tools"):
            make_workload("redis").setup(target)
    finally:
        target.close()
