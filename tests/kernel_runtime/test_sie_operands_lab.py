"""Sites that read or write memory addressed from the saved registers, live in the lab.

- A stack cell (rsp as the base): SCHED_NR_MIGRATE_BREAK is stored to env.loop_break at
  0xc0(%rsp) in sched_balance_rq, from the oracle catalog made here (about 20 s). A tracefs
  probe (no BPF) on the next instruction reads the cell back through the same saved rsp while
  two spinning processes make the scheduler balance.
- A compare against a stack cell: clock_nanosleep checks 'tv_nsec >= NSEC_PER_SEC' as
  'cmp $999999999, 8(%rsp); ja'. A site written here (no analysis constant lives there: it is a
  validity check) lowers the limit, and an in-range request is refused with EINVAL.
- A multiply's memory input: writing the neighbour table's unres_qlen stores
  'imul $2090, 4(%rsp), %edx' (the parsed packets, times SKB_TRUESIZE(ETH_FRAME_LEN)) into
  unres_qlen_bytes. A site written here saves the stack cell at the imul and rewrites the
  product; unres_qlen_bytes reads back V per packet.
- A compare against a global (rip-relative): proc_dostring's write path tests
  'sysctl_writes_strict == SYSCTL_WRITES_STRICT' as 'cmp $1, X(%rip); je'. A site written here
  reads the global from the function's start the probe finds at run time (regs->ip - 1 minus
  the attach cookie) and moves the 1 to 2: a write at a non-zero file offset to a string
  sysctl then starts over at the buffer's start ("de", not "abcde").
The written sites are found in the lab kernel's code by their instructions, so a rebuilt
kernel moves their offsets, not the test; they are unverified by the oracle, so this lab loads
with the flag that allows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sie_lab import guest_python

from analysis import disasm
from analysis.elfimage import Image
from autotune.core.catalog import Knob, MemoryLocation, MemoryOperand
from kernel_runtime.lab.target import LabTarget
from kernel_runtime.lab.vm import Lab
from kernel_runtime.sie.knobset import CatalogChoice

pytestmark = pytest.mark.lab

NAME = "SCHED_NR_MIGRATE_BREAK"
BALANCE = "sched_balance_rq"
LOOP_BREAK = 0xC0  # env.loop_break in sched_balance_rq's frame
T = "/sys/kernel/tracing/"
# Spinners on both CPUs and short sleeps (newly idle CPUs balance) while a tracefs probe
# on the instruction after the store prints the stored cell; prints the set of values.
LOOP_BREAKS = (
    "import os, re, time\nT = '" + T + "'\n"
    "def kev(line):\n"
    "    fd = os.open(T + 'kprobe_events', os.O_WRONLY | os.O_APPEND)\n"
    "    os.write(fd, line.encode()); os.close(fd)\n"
    "kev('p:sie_lb {at} lb=+{disp}(%sp):u32\\n')\n"
    "open(T + 'events/kprobes/sie_lb/enable', 'w').write('1'); open(T + 'trace', 'w')\n"
    "pids = []\n"
    "for _ in range(3):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        end = time.time() + 2\n"
    "        while time.time() < end: pass\n"
    "        os._exit(0)\n"
    "    pids.append(pid)\n"
    "for _ in range(40): time.sleep(0.05)\n"
    "for pid in pids: os.waitpid(pid, 0)\n"
    "open(T + 'events/kprobes/sie_lb/enable', 'w').write('0')\n"
    "text = open(T + 'trace').read(); kev('-:sie_lb\\n')\n"
    "print(','.join(sorted(set(re.findall(r'lb=(\\d+)', text)))))\n")
# clock_nanosleep(CLOCK_MONOTONIC, 0, {0, 999999500}): 0 after the sleep, or the errno
NANOSLEEP = ("import ctypes, struct\nlibc = ctypes.CDLL(None)\n"
             "ts = ctypes.create_string_buffer(struct.pack('qq', 0, 999999500))\n"
             "print(libc.clock_nanosleep(1, 0, ts, None))\n")
# 5 packets into unres_qlen, read back as bytes, the bytes value restored afterwards
UNRES_QLEN = ("p = '/proc/sys/net/ipv4/neigh/default/unres_qlen'\n"
              "was = open(p + '_bytes').read()\nopen(p, 'w').write('5')\n"
              "print(open(p + '_bytes').read().strip()); open(p + '_bytes', 'w').write(was)\n")
TRUESIZE = 2090  # SKB_TRUESIZE(ETH_FRAME_LEN) on this build
KALLSYMS = ("import re\nprint(''.join(l for l in open('/proc/kallsyms')\n"
            "      if re.search(r' (proc_dostring|sysctl_writes_strict)$', l)))\n")
# 'abc' written at offset 0, then 'de' at offset 3: strict writes append ('abcde'), others
# start over ('de'); the domain name is restored afterwards
STRING_WRITE = ("import os\np = '/proc/sys/kernel/domainname'\nwas = open(p).read()\n"
                "fd = os.open(p, os.O_WRONLY); os.pwrite(fd, b'abc', 0); os.close(fd)\n"
                "fd = os.open(p, os.O_WRONLY); os.pwrite(fd, b'de', 3); os.close(fd)\n"
                "print(open(p).read().strip()); open(p, 'w').write(was)\n")


def _function(image: Image, name: str) -> tuple[str, int, list[disasm.Insn]]:
    func = image.by_name(name)[0]
    return name, func.start, disasm.disassemble(image.code(func), func.start)


def _knob(name: str, default: int, dmax: int, site: dict[str, object]) -> Knob:
    return Knob.model_validate({"name": name, "subsystem": "test", "category": "threshold",
                                "default": default, "domain": {"min": 1, "max": dmax},
                                "backend": "sie", "sites": [site]})


def nsec_limit_knob(image: Image) -> Knob:
    """'cmp qword ptr [rsp + 8], 999999999; ja' in __x64_sys_clock_nanosleep as a flags site."""
    name, start, insns = _function(image, "__x64_sys_clock_nanosleep")
    k = next(i for i, ins in enumerate(insns) if ins.mnemonic == "cmp"
             and ins.mem == ("rsp", 8, 8) and ins.imms == (999_999_999,))
    cmp, ja = insns[k], insns[k + 1]
    assert ja.mnemonic == "ja"
    return _knob("TEST_NSEC_PER_SEC", 1_000_000_000, 1_000_000_000, {
        "function": name, "cs_start": cmp.address - start, "cs_end": ja.address - start,
        "probe_offset": ja.address - start, "probe_offsets": [ja.address - start],
        "location": "flags", "synthesis": "flags", "width": "u64", "expr": "V-1",
        "expected_default": 999_999_999, "compare_operand": {"base_reg": "rsp", "disp": 8, "size": 8},
        "safe_spans": [{"function": name, "start": cmp.address - start, "end": ja.next - start}]})


def truesize_knob(image: Image) -> Knob:
    """'imul edx, dword ptr [rsp + 4], 2090' in neigh_proc_dointvec_unres_qlen as a
    save-recompute site (the next instruction loads the table's pointer, then stores)."""
    name, start, insns = _function(image, "neigh_proc_dointvec_unres_qlen")
    k = next(i for i, ins in enumerate(insns) if ins.mnemonic == "imul" and ins.imms == (TRUESIZE,))
    imul, after = insns[k], insns[k + 1]
    assert imul.mem == ("rsp", 4, 4) and imul.writes_reg == "edx"
    return _knob("TEST_SKB_TRUESIZE", TRUESIZE, 65536, {
        "function": name, "cs_start": imul.address - start, "cs_end": after.address - start,
        "probe_offset": after.address - start, "probe_offsets": [after.address - start],
        "save_offset": imul.address - start, "location": "edx", "synthesis": "save-recompute",
        "recompute_op": "mul", "width": "u32", "expr": "V", "expected_default": TRUESIZE,
        "save_input": {"base_reg": "rsp", "disp": 4, "size": 4},
        "safe_spans": [{"function": name, "start": imul.address - start, "end": after.next - start}]})


def strict_writes_knob(image: Image) -> Knob:
    """'cmp dword ptr [rip + X], 1; mov rsi, r13; je' in proc_dostring as a flags site whose
    operand is the global sysctl_writes_strict, addressed from the function's start."""
    name, start, insns = _function(image, "proc_dostring")
    k = next(i for i, ins in enumerate(insns) if ins.mnemonic == "cmp" and ins.mem is not None
             and ins.mem[0] == "rip" and ins.imms == (1,))
    cmp, after = insns[k], insns[k + 1]
    assert cmp.mem is not None and insns[k + 2].mnemonic == "je"
    cell = cmp.next + cmp.mem[1] - start
    return _knob("TEST_SYSCTL_WRITES_STRICT", 1, 3, {
        "function": name, "cs_start": cmp.address - start, "cs_end": insns[k + 2].address - start,
        "probe_offset": after.address - start, "probe_offsets": [after.address - start],
        "location": "flags", "synthesis": "flags", "width": "u32", "expr": "V",
        "expected_default": 1, "compare_operand": {"base_reg": "rip", "disp": cell, "size": 4},
        "safe_spans": [{"function": name, "start": cmp.address - start,
                        "end": insns[k + 2].next - start}]})


@pytest.fixture(scope="module")
def catalog_path() -> Path:
    from analysis import analyze, kernel_files

    result = analyze.analyze(kernel_files.lab_kernel(), names=[NAME], oracle=True, jobs=2)
    assert result.path is not None
    return result.path


@pytest.fixture(scope="module")
def image() -> Image:
    from analysis import kernel_files

    return Image(kernel_files.lab_kernel().vmlinux)


@pytest.fixture(scope="module")
def lab(catalog_path: Path) -> Iterator[LabTarget]:
    target = LabTarget(lab=Lab.private(),
                       catalog=CatalogChoice(str(catalog_path), allow_unverified=True))
    try:
        yield target
    finally:
        target.close()


def loop_breaks(lab: LabTarget, probe_offset: int) -> set[int]:
    code = LOOP_BREAKS.format(at=f"{BALANCE}+{probe_offset:#x}", disp=LOOP_BREAK)
    return {int(v) for v in guest_python(lab, code).split(",") if v}


def assert_clean(lab: LabTarget, name: str) -> None:
    state = next(s for s in lab.control.status() if s.name == name)
    assert state.alert is None
    assert sum(n for c, n in state.counters.items() if c.endswith(".mismatches")) == 0
    assert sum(n for c, n in state.counters.items() if c.endswith(".applied")) > 0


def test_stack_cell_follows_the_knob(lab: LabTarget, image: Image) -> None:
    knob = next(k for k in lab.knobs() if k.name == NAME)
    site = next(s for s in knob.sites if isinstance(s.location, MemoryLocation))
    assert site.location == MemoryLocation(base_reg="rsp", disp=LOOP_BREAK, size=4)
    assert site.function == BALANCE and all(s.verified == "oracle" for s in knob.sites)
    # the readback probe sits on the instruction after the site's (which sits after the store)
    _, start, insns = _function(image, BALANCE)
    after = next(i.next for i in insns if i.address == start + site.probe_offset) - start
    assert loop_breaks(lab, after) == {32}
    try:
        lab.control.apply({NAME: 8}, {NAME: knob})
        assert loop_breaks(lab, after) == {8}
        assert_clean(lab, NAME)
    finally:
        lab.control.revert()
    assert loop_breaks(lab, after) == {32}


def test_compare_against_a_stack_cell(lab: LabTarget, image: Image) -> None:
    knob = nsec_limit_knob(image)
    assert isinstance(knob.sites[0].compare_operand, MemoryOperand)
    assert guest_python(lab, NANOSLEEP) == "0"
    try:
        lab.control.apply({knob.name: 999_999_000}, {knob.name: knob})
        assert guest_python(lab, NANOSLEEP) == "22"  # EINVAL: 999999500 >= the new limit
        assert_clean(lab, knob.name)
    finally:
        lab.control.revert()
    assert guest_python(lab, NANOSLEEP) == "0"


def test_multiply_of_a_stack_cell(lab: LabTarget, image: Image) -> None:
    knob = truesize_knob(image)
    assert guest_python(lab, UNRES_QLEN) == str(5 * TRUESIZE)
    try:
        lab.control.apply({knob.name: 1000}, {knob.name: knob})
        assert guest_python(lab, UNRES_QLEN) == "5000"
        assert_clean(lab, knob.name)
    finally:
        lab.control.revert()
    assert guest_python(lab, UNRES_QLEN) == str(5 * TRUESIZE)


def test_compare_against_a_global(lab: LabTarget, image: Image) -> None:
    knob = strict_writes_knob(image)
    # the operand is sysctl_writes_strict, as the running (KASLR-placed) kernel lays it out
    syms = {line.split()[2]: int(line.split()[0], 16) for line in guest_python(lab, KALLSYMS).splitlines()}
    assert syms["sysctl_writes_strict"] - syms["proc_dostring"] == knob.sites[0].compare_operand.disp  # type: ignore[union-attr]
    assert guest_python(lab, STRING_WRITE) == "abcde"
    try:
        lab.control.apply({knob.name: 2}, {knob.name: knob})
        assert guest_python(lab, STRING_WRITE) == "de"
        assert_clean(lab, knob.name)  # the global read at the probe held the 1 it compared
    finally:
        lab.control.revert()
    assert guest_python(lab, STRING_WRITE) == "abcde"
