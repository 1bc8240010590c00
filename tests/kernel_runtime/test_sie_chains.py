"""Multiply-chain sites (``x * f(V)`` as lea/shl/add/sub) in the runtime, without a kernel:
the rendered recompute multiplies the saved input exactly as the chain does, and a write
probe that shares its address with another site's save probe is attached after it (kprobes
at one address run newest first, so the rewrite comes before the save that reads it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from autotune.core.catalog import Knob
from kernel_runtime.sie import render
from kernel_runtime.sie.runtime import _attach_order


def ewma() -> Knob:
    """blk-mq's dispatch EWMA: 'lea (,%rdx,8), %eax; sub %edx, %eax' (x*(V-1)) at +0x5e, then
    'shr $3, %eax' (log2(V)) saved at +0x67, where the chain's write probe also sits."""
    shr = {"function": "f", "cs_start": 0x67, "cs_end": 0x6a, "probe_offset": 0x6a,
           "save_offset": 0x67, "synthesis": "save-recompute", "recompute_op": "shr",
           "location": "eax", "width": "u32", "expr": "log2(V)", "expected_default": 3}
    chain = {"function": "f", "cs_start": 0x5e, "cs_end": 0x67, "probe_offset": 0x67,
             "save_offset": 0x5e, "synthesis": "save-recompute", "recompute_op": "mul",
             "save_input": "rdx", "location": "eax", "width": "u32", "expr": "V-1",
             "expected_default": 7}
    return Knob.model_validate({"name": "W", "subsystem": "t", "category": "interval",
                                "default": 8, "backend": "sie", "sites": [chain, shr],
                                "domain": {"min": 2, "max": 32, "constraints": [
                                    {"kind": "pow2", "reason": "a shift by log2(V)"}]}})


def test_write_probe_attaches_after_the_save_probe_at_its_address() -> None:
    assert _attach_order(ewma().sites) == [1, 0]
    assert _attach_order(ewma().sites[1:]) == [0]


def test_rendered_multiply_matches_the_chain(tmp_path: Path) -> None:
    """SIE_RECOMPUTE, compiled by the host's gcc, gives what 'lea (,x,8); sub x' gives at
    32 bits for inputs whose upper half is set (the saved register is the whole rdx)."""
    k = ewma()
    src = render.render_site(k, k.sites[0], 0).source
    assert "#define SIE_INPUT_REG 12\n" in src and "#define SIE_REG 10\n" in src  # rdx, rax
    assert "#define SIE_EXPECTED_IV 0x7ULL" in src and "#define SIE_MERGE 0\n" in src
    define = next(line for line in src.splitlines() if line.startswith("#define SIE_RECOMPUTE"))
    xs = [0, 1, 0xFFFF_FFFF, 0x1_2345_6789, (1 << 64) - 1]
    prog = tmp_path / "mul.c"
    prog.write_text(
        "#include <stdio.h>\ntypedef unsigned long long __u64;\n" + define + "\n"
        "int main(void) {\n"
        f"  __u64 xs[] = {{{', '.join(f'{x:#x}ULL' for x in xs)}}};\n"
        "  for (int i = 0; i < 5; i++)\n"
        "    for (__u64 iv = 1; iv < 40; iv += 7)\n"
        "      printf(\"%llu\\n\", SIE_RECOMPUTE(xs[i], iv) & 0xffffffffULL);\n"
        "  return 0;\n}\n")
    subprocess.run(["gcc", "-O2", "-o", str(tmp_path / "mul"), str(prog)], check=True)
    got = [int(v) for v in subprocess.run([str(tmp_path / "mul")], capture_output=True,
                                          text=True, check=True).stdout.split()]
    assert got == [(x & 0xFFFF_FFFF) * iv & 0xFFFF_FFFF for x in xs for iv in range(1, 40, 7)]
