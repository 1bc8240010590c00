"""Workload ``redis``: a real redis-server driven by redis-benchmark.

redis-benchmark has no duration flag, so ``setup`` calibrates a request count that takes
about the requested duration at default kernel settings; that count then stays fixed for
the whole study, so every run does the same work and runs compare fairly.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass

from autotune.core.errors import BadInputError, EnvironmentProblem, MeasurementError
from kernel_runtime.target import ProcessHandle, Target
from workloads.base import Measurement, Sample, Workload, provenance

APT_FIX = "install it with 'apt-get install -y redis-server redis-tools' (as root)"
SUPPORTED_TESTS = {"set", "get", "incr", "lpush", "rpush", "lpop", "rpop", "sadd", "hset",
                   "spop", "zadd", "zpopmin", "lrange_100", "mset", "ping_inline", "ping_mbulk"}
CALIBRATION_REQUESTS = 20000


@dataclass(frozen=True)
class RedisOptions:
    """The knobs of the load itself (not of the kernel)."""

    clients: int = 50
    pipeline: int = 1
    value_size: int = 64
    tests: str = "set,get"
    keyspace: int = 100_000

    def validate(self) -> None:
        if not 1 <= self.clients <= 10_000:
            raise BadInputError(f"redis clients {self.clients} outside [1, 10000]")
        if not 1 <= self.pipeline <= 1000:
            raise BadInputError(f"redis pipeline {self.pipeline} outside [1, 1000]")
        if not 1 <= self.value_size <= 1 << 20:
            raise BadInputError(f"redis value size {self.value_size} outside [1, 1048576]")
        unknown = set(self.test_list()) - SUPPORTED_TESTS
        if unknown:
            raise BadInputError(f"redis tests {sorted(unknown)} unknown; choose from "
                                f"{', '.join(sorted(SUPPORTED_TESTS))}")

    def test_list(self) -> list[str]:
        return [t.strip().lower() for t in self.tests.split(",") if t.strip()]


def split_cpus(n: int) -> tuple[list[int] | None, list[int] | None]:
    """Server on CPU 0, load generator on the rest; no pinning on a single CPU."""
    if n < 2:
        return None, None
    return [0], list(range(1, n))


def parse_csv(text: str) -> list[Sample]:
    """Parse redis-benchmark ``--csv`` output (one row per test)."""
    rows = list(csv.DictReader(io.StringIO(text.strip())))
    samples = []
    for row in rows:
        try:
            rps = float(row["rps"])
            if rps == float("inf"):
                raise MeasurementError("redis-benchmark finished too fast to time: raise the duration")
            samples.append(Sample(name=row["test"], throughput=rps,
                                  p50_ms=float(row["p50_latency_ms"]),
                                  p95_ms=float(row["p95_latency_ms"]),
                                  p99_ms=float(row["p99_latency_ms"]),
                                  avg_ms=float(row["avg_latency_ms"]),
                                  max_ms=float(row["max_latency_ms"])))
        except (KeyError, ValueError) as e:
            raise MeasurementError(f"unreadable redis-benchmark csv row {row!r}: {e}") from e
    if not samples:
        raise MeasurementError(f"redis-benchmark printed no results: {text[:200]!r}")
    return samples


def aggregate(samples: list[Sample], requests_each: int) -> tuple[float, float, float, float]:
    """Throughput = all requests / all time; latencies = mean over tests (equal request counts)."""
    total_time = sum(requests_each / s.throughput for s in samples)
    thr = requests_each * len(samples) / total_time
    n = len(samples)
    return (thr, sum(s.p50_ms for s in samples) / n, sum(s.p95_ms for s in samples) / n,
            sum(s.p99_ms for s in samples) / n)


class RedisWorkload(Workload):
    name = "redis"

    def __init__(self, *, options: RedisOptions | None = None) -> None:
        self.opts = options or RedisOptions()
        self.opts.validate()
        self._target: Target | None = None
        self._server: ProcessHandle | None = None
        self._port = 0
        self._bench = ""
        self._server_cpus: list[int] | None = None
        self._bench_cpus: list[int] | None = None
        self._rps_estimate = 0.0
        self._requests: dict[float, int] = {}
        self._versions: dict[str, str] = {}

    def options(self) -> dict[str, object]:
        return asdict(self.opts)

    def setup(self, target: Target) -> None:
        server = target.which("redis-server")
        bench = target.which("redis-benchmark")
        if not server:
            raise EnvironmentProblem(f"redis-server not found on target {target.name}: {APT_FIX}")
        if not bench:
            raise EnvironmentProblem(f"redis-benchmark not found on target {target.name}: {APT_FIX}")
        self._target, self._bench = target, bench
        self._server_cpus, self._bench_cpus = split_cpus(target.cpu_count())
        workdir = target.make_workdir("redis")
        self._port = target.free_port()
        conf = f"{workdir}/redis.conf"
        target.write_file(conf, "\n".join([
            f"port {self._port}", "bind 127.0.0.1", f"dir {workdir}", 'save ""',
            "appendonly no", "protected-mode yes", "daemonize no", f"logfile {workdir}/redis.log",
            "maxclients 10000", ""]))
        self._server = target.spawn([server, conf], cpus=self._server_cpus, cwd=workdir)
        self._wait_ready(target)
        self._versions = {"redis-server": self._version(target, server),
                          "redis-benchmark": self._version(target, bench)}
        self._preload(target)
        calib = self._bench_run(target, CALIBRATION_REQUESTS, timeout=120)
        self._rps_estimate, *_ = aggregate(calib, CALIBRATION_REQUESTS)

    def _version(self, target: Target, binary: str) -> str:
        res = target.run([binary, "--version"], timeout=10)
        return res.stdout.strip().splitlines()[0] if res.stdout.strip() else "unknown"

    def _wait_ready(self, target: Target) -> None:
        assert self._server is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not target.alive(self._server):
                raise MeasurementError("redis-server exited during start-up; see its log in the workdir")
            if target.port_open(self._port):
                res = target.run([self._bench, "-p", str(self._port), "-n", "1", "-t", "ping_inline",
                                  "--csv"], timeout=10)
                if res.returncode == 0:
                    return
            time.sleep(0.1)
        raise MeasurementError(f"redis-server did not answer on port {self._port} within 15 s")

    def _preload(self, target: Target) -> None:
        if not {"get", "lrange_100"} & set(self.opts.test_list()):
            return
        res = target.run([self._bench, "-p", str(self._port), "-t", "set", "-n",
                          str(self.opts.keyspace), "-r", str(self.opts.keyspace), "-d",
                          str(self.opts.value_size), "-c", str(self.opts.clients), "-P", "16",
                          "--csv"], timeout=300, cpus=self._bench_cpus)
        if res.returncode != 0:
            raise MeasurementError(f"redis preload failed: {res.stderr.strip()[:200]}")

    def _bench_run(self, target: Target, requests: int, timeout: float) -> list[Sample]:
        argv = [self._bench, "-h", "127.0.0.1", "-p", str(self._port), "-c", str(self.opts.clients),
                "-P", str(self.opts.pipeline), "-d", str(self.opts.value_size), "-r",
                str(self.opts.keyspace), "-n", str(requests), "-t", self.opts.tests, "--csv"]
        res = target.run(argv, timeout=timeout, cpus=self._bench_cpus)
        if res.returncode != 0:
            raise MeasurementError(f"redis-benchmark exited {res.returncode}: {res.stderr.strip()[:200]}")
        self._last_raw = res.stdout
        return parse_csv(res.stdout)

    def requests_for(self, duration: float) -> int:
        """Requests per test so one run lasts about ``duration`` s at default settings."""
        if duration not in self._requests:
            per_test = self._rps_estimate * duration / len(self.opts.test_list())
            self._requests[duration] = max(1000, int(per_test))
        return self._requests[duration]

    def run(self, target: Target, duration: float) -> Measurement:
        if self._server is None:
            raise MeasurementError("redis workload used before setup()")
        if not target.alive(self._server):
            raise MeasurementError("redis-server is no longer running")
        n = self.requests_for(duration)
        cpu0 = target.cpu_seconds(self._server)
        start = time.monotonic()
        samples = self._bench_run(target, n, timeout=max(60.0, duration * 20))
        wall = time.monotonic() - start
        thr, p50, p95, p99 = aggregate(samples, n)
        return Measurement(workload=self.name, throughput=thr, p50_ms=p50, p95_ms=p95, p99_ms=p99,
                           server_cpu_s=target.cpu_seconds(self._server) - cpu0, wall_s=wall,
                           samples=samples, raw=self._last_raw,
                           provenance=provenance(target, self._versions) | {
                               "requests_per_test": n, "options": self.options()})

    def teardown(self) -> None:
        if self._target is not None and self._server is not None:
            self._target.stop(self._server)
        self._server = None
