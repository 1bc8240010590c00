"""Analysis knobs in the lab: an oracle catalog of the lab build, loaded by the SIE runtime.

The catalog is made here by the real analysis with the oracle, for two constants the hand
catalog does not have (a fresh machine has no cached whole-list catalog; these two cost about
half a minute once the analysis tests prepared the kernel tree). Their BPF objects are not in
the lab image: the host compiles them and ships them over the agent. Each knob is checked the
way its effect shows in the guest: set -> the kernel behaves as if built with the value,
revert -> the built-in value again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sie_lab import guest_python

from autotune.core.catalog import Knob
from kernel_runtime.lab.target import LabTarget
from kernel_runtime.lab.vm import Lab
from kernel_runtime.sie.knobset import GIVEN, CatalogChoice

pytestmark = pytest.mark.lab

NAMES = ("IORING_MAX_ENTRIES", "EP_MAX_NESTS")
# io_uring_setup(2^20 entries, IORING_SETUP_CLAMP): the kernel clamps the SQ ring to
# IORING_MAX_ENTRIES and sizes the CQ ring twice that; prints both ring sizes.
IORING = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True)\n"
          "p = ctypes.create_string_buffer(120); p[8:12] = (16).to_bytes(4, 'little')\n"
          "fd = libc.syscall(425, 1 << 20, p); assert fd >= 0, os.strerror(ctypes.get_errno())\n"
          "os.close(fd); print(int.from_bytes(p[0:4], 'little'), int.from_bytes(p[4:8], 'little'))\n")
# The longest chain of epoll instances each watching the previous one before epoll_ctl
# refuses with ELOOP (40): EP_MAX_NESTS bounds the nesting depth.
EPOLL = ("import select\nchain = [select.epoll()]\n"
         "while len(chain) < 64:\n    e = select.epoll()\n"
         "    try:\n        e.register(chain[-1].fileno(), select.EPOLLIN)\n"
         "    except OSError as err:\n        print(len(chain), err.errno); break\n"
         "    chain.append(e)\n")
CASES = {
    # knob: (probe, built-in result, value, result for that value)
    "IORING_MAX_ENTRIES": (IORING, "32768 65536", 4096, "4096 8192"),
    "EP_MAX_NESTS": (EPOLL, "5 40", 2, "3 40"),
}


@pytest.fixture(scope="module")
def catalog_path() -> Path:
    from analysis import analyze, kernel_files

    result = analyze.analyze(kernel_files.lab_kernel(), names=list(NAMES), oracle=True, jobs=2)
    assert result.path is not None
    return result.path


@pytest.fixture(scope="module")
def lab(catalog_path: Path) -> Iterator[LabTarget]:
    # A private VM: its guest starts without any shipped object, whoever else runs a lab.
    target = LabTarget(lab=Lab.private(), catalog=CatalogChoice(str(catalog_path)))
    try:
        yield target
    finally:
        target.close()


def test_analysis_knobs_are_new_oracle_verified_and_usable(lab: LabTarget,
                                                           knobs: dict[str, Knob]) -> None:
    assert lab.knob_set is not None
    hand = {k.name for k in lab.knob_set.hand_knobs()}
    for name in NAMES:
        assert name not in hand and lab.knob_set.origin(name) == GIVEN
        assert all(s.verified == "oracle" for s in knobs[name].sites)
    ok, left = lab.control.usable([knobs[n] for n in NAMES])
    assert sorted(k.name for k in ok) == sorted(NAMES), left


@pytest.mark.parametrize("name", NAMES)
def test_analysis_knob_set_and_revert(lab: LabTarget, knobs: dict[str, Knob], name: str) -> None:
    probe, builtin, value, expected = CASES[name]
    assert guest_python(lab, probe) == builtin
    try:
        lab.control.apply({name: value}, knobs)
        assert guest_python(lab, probe) == expected
        state = next(s for s in lab.control.status() if s.name == name)
        assert state.alert is None
        assert sum(v for k, v in state.counters.items() if k.endswith(".applied")) > 0
        assert sum(v for k, v in state.counters.items() if k.endswith(".mismatches")) == 0
    finally:
        lab.control.revert()
    assert guest_python(lab, probe) == builtin
    # The objects came from the host (the image has none for these sites) and stay shipped.
    assert sum(s.objects for s in lab.objects.shipments) > 0
    assert lab.objects.missing([knobs[name]]) == []


def test_lab_refuses_unverified_and_module_only_knobs(lab: LabTarget, knobs: dict[str, Knob]) -> None:
    ioring = knobs["IORING_MAX_ENTRIES"]
    unverified = ioring.model_copy(update={"name": "IORING_UNVERIFIED", "sites": [
        s.model_copy(update={"verified": "emulation"}) for s in ioring.sites]})
    in_bfq = ioring.model_copy(update={"name": "IORING_IN_BFQ", "sites": [
        s.model_copy(update={"module": "bfq"}) for s in ioring.sites]})
    ok, left = lab.control.usable([unverified, in_bfq])
    reasons = dict(left)
    assert not ok
    assert "4 of 4 sites not oracle-verified" in reasons["IORING_UNVERIFIED"]
    assert reasons["IORING_IN_BFQ"].startswith("module(s) bfq not loaded")


def test_a_kprobes_host_loads_the_catalog_directly(lab: LabTarget, knobs: dict[str, Knob]) -> None:
    """The guest is a host with kprobes: HostTarget(catalog=...) there is the host path
    (objects from its cache, as clang would have left them on a host)."""
    assert lab.knob_set is not None and lab.knob_set.analysis is not None
    lab.control.apply({"IORING_MAX_ENTRIES": 4096}, knobs)  # makes sure its objects are there
    lab.control.revert()
    catalog = lab.knob_set.analysis
    lab.write_file("/tmp/lab-catalog.json", catalog.model_dump_json())
    foreign = catalog.model_copy(update={"kernel": catalog.kernel.model_copy(
        update={"build_id": "0" * 40})})
    lab.write_file("/tmp/foreign-catalog.json", foreign.model_dump_json())
    code = (
        "import json\n"
        "from autotune.core.errors import KernelMismatchError\n"
        "from kernel_runtime.host import HostTarget\n"
        "from kernel_runtime.sie.knobset import CatalogChoice\n"
        "try:\n"
        "    HostTarget(catalog=CatalogChoice('/tmp/foreign-catalog.json'))\n"
        "    refused = ''\n"
        "except KernelMismatchError as e:\n"
        "    refused = str(e)\n"
        "t = HostTarget(catalog=CatalogChoice('/tmp/lab-catalog.json'))\n"
        "k = {k.name: k for k in t.knobs()}\n"
        "t.control.apply({'IORING_MAX_ENTRIES': 1024}, k)\n"
        f"exec(compile({IORING!r}, 'probe', 'exec'))\n"
        "t.close()\n"
        "print(json.dumps({'origin': t.knob_set.origin('IORING_MAX_ENTRIES'), 'refused': refused}))\n")
    # A second controller beside the agent's (which holds the kernel lock, its values reverted).
    res = lab.run(["env", "AUTOTUNE_KERNEL_LOCK=/tmp/host-path.lock", "python3.11", "-c", code],
                  timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[0] == "1024 2048"
    facts = json.loads(lines[1])
    assert facts["origin"] == GIVEN
    assert "build 000000000000, the target runs" in facts["refused"]
    assert guest_python(lab, IORING) == "32768 65536"


def test_a_site_that_disables_itself_still_reverts(lab: LabTarget, knobs: dict[str, Knob]) -> None:
    """A wrong expected value (a stale catalog) stops the knob; the journal still closes."""
    ioring = knobs["IORING_MAX_ENTRIES"]
    sites = [s.model_copy(update={"expected_default": s.expected_default + 1}) if i == 1 else s
             for i, s in enumerate(ioring.sites)]
    wrong = ioring.model_copy(update={"name": "IORING_STALE", "sites": sites})
    try:
        lab.control.apply({"IORING_STALE": 4096}, {"IORING_STALE": wrong})
        assert guest_python(lab, IORING) == "32768 65536"  # nothing written
        state = next(s for s in lab.control.status() if s.name == "IORING_STALE")
        assert state.counters["site1.mismatches"] >= 1 and state.counters["site1.applied"] == 0
        assert state.alert is not None and "io_uring_setup+0x" in state.alert
    finally:
        lab.control.revert()
    assert lab.control.recover() == []  # the session closed: nothing left to restore
