"""The rendered flags and shift models against this machine's own CPU.

Each (instruction, width) site is rendered as the runtime would load it; its SIE_FLAGS_OF,
SIE_FLAGS_MASK and SIE_RECOMPUTE, with the flag helpers of sie_common.bpf.h, are compiled by
the host's gcc beside inline assembly that runs the real instruction (an x86-64 host, like
the lab's guest) and the two are compared over edge and random operands. A model that
disagreed with the CPU at the default would disable the knob (its self-check); at another
value it would steer the kernel's branch wrong.
"""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from autotune.core.catalog import Knob
from kernel_runtime.sie import render

WIDTHS = {8: ("u8", "b", "al"), 16: ("u16", "w", "ax"), 32: ("u32", "k", "eax"), 64: ("u64", "q", "rax")}
SUFFIX = {8: "b", 16: "w", 32: "l", 64: "q"}
HEADER = ("typedef unsigned long long __u64; typedef long long __s64; typedef int __s32;\n"
          "typedef short __s16; typedef signed char __s8;\n"
          "#include <stdio.h>\n#define __always_inline inline __attribute__((always_inline))\n")


def site_knob(op: str, bits: int) -> Knob:
    width, _, reg = WIDTHS[bits]
    site: dict[str, object] = {"function": "f", "cs_start": 0, "cs_end": 3, "probe_offset": 3,
                               "width": width, "expr": "V", "expected_default": 5}
    if op in ("cmp", "test"):
        site |= {"synthesis": "flags", "location": "flags", "compare_operand": reg, "flags_op": op}
    elif op == "sar":
        site |= {"synthesis": "save-recompute", "location": reg, "save_offset": 0, "recompute_op": "sar"}
    else:
        site |= {"synthesis": "save-recompute", "location": reg, "save_offset": 0,
                 "recompute_op": "add" if op == "sub" else op, "recompute_flags": True, "flags_op": op}
    return Knob.model_validate({"name": "X", "subsystem": "t", "category": "batch", "default": 5,
                                "domain": {"min": 0, "max": bits - 1}, "backend": "sie",
                                "sites": [site]})


def model_source(op: str, bits: int) -> str:
    """The defines and the flag helpers of the rendered program, as plain C."""
    knob = site_knob(op, bits)
    src = render.render_site(knob, knob.sites[0], 0).source
    defines = [line for line in src.splitlines() if line.startswith("#define SIE_")]
    start = src.index("#ifdef SIE_BITS")
    helpers = src[start:src.index("#endif\n\n#endif", start) + len("#endif")]  # + header guard
    return HEADER + "\n".join(defines) + "\n" + helpers + "\n"


def operands(bits: int) -> list[int]:
    mask = (1 << bits) - 1
    top = 1 << (bits - 1)
    edges = [0, 1, 2, 0xF, 0x10, 0x7F, 0x80, 0xFF, top - 1, top, top + 1, mask - 1, mask]
    rng = random.Random(bits)
    return sorted({e & mask for e in edges} | {rng.getrandbits(bits) for _ in range(24)})


def run(tmp_path: Path, name: str, source: str) -> list[str]:
    c = tmp_path / f"{name}.c"
    c.write_text(source)
    subprocess.run(["gcc", "-O1", "-o", str(tmp_path / name), str(c)], check=True)
    out = subprocess.run([str(tmp_path / name)], capture_output=True, text=True, check=True).stdout
    return out.split()


@pytest.mark.parametrize("bits", [8, 16, 32, 64])
@pytest.mark.parametrize("op", ["cmp", "test", "sub", "add", "and", "or", "xor"])
def test_flags_model_matches_the_cpu(op: str, bits: int, tmp_path: Path) -> None:
    _, mod, _ = WIDTHS[bits]
    xs = operands(bits)
    # the site's IV: a 'sub $imm' site's expression is -imm (its recompute adds)
    iv = "(-(b))" if op == "sub" else "(b)"
    insn = f"{op}{SUFFIX[bits]} %{mod}2, %{mod}0"  # AT&T: op b, a -> flags of a OP b
    main = (
        f"static __u64 cpu(__u64 a, __u64 b) {{ __u64 f, x = a;\n"
        f"  asm volatile(\"{insn}; pushfq; popq %1\" : \"+r\"(x), \"=r\"(f) : \"r\"(b) : \"cc\");\n"
        "  return f; }\n"
        f"int main(void) {{ __u64 xs[] = {{{', '.join(f'{x:#x}ULL' for x in xs)}}}; int bad = 0;\n"
        "  for (unsigned i = 0; i < sizeof(xs) / 8; i++) for (unsigned j = 0; j < sizeof(xs) / 8; j++) {\n"
        "    __u64 a = xs[i], b = xs[j];\n"
        f"    if ((cpu(a, b) & SIE_FLAGS_MASK) != (SIE_FLAGS_OF(a, {iv}) & SIE_FLAGS_MASK)) bad++; }}\n"
        "  printf(\"%d %llu\\n\", bad, (__u64)SIE_FLAGS_MASK); return 0; }\n")
    bad, mask = run(tmp_path, f"{op}{bits}", model_source(op, bits) + main)
    assert bad == "0"
    af = 0x10
    assert int(mask) & af == (0 if op in ("test", "and", "or", "xor") else af)


@pytest.mark.parametrize("bits", [8, 16, 32, 64])
def test_sar_recompute_matches_the_cpu(bits: int, tmp_path: Path) -> None:
    """Sign-preserving at the operand's width: the bits above it (garbage in a register) never
    shift in, and a negative value stays negative."""
    _, mod, _ = WIDTHS[bits]
    xs = operands(bits)
    main = (
        "static __u64 cpu(__u64 a, __u64 n) { __u64 x = a;\n"
        f"  asm volatile(\"sar{SUFFIX[bits]} %%cl, %{mod}0\" : \"+r\"(x) : \"c\"(n) : \"cc\");\n"
        "  return x; }\n"
        f"int main(void) {{ __u64 xs[] = {{{', '.join(f'{x:#x}ULL' for x in xs)}}}; int bad = 0;\n"
        f"  for (unsigned i = 0; i < sizeof(xs) / 8; i++) for (__u64 n = 0; n < {bits}; n++) {{\n"
        "    __u64 dirty = xs[i] | (SIE_MASK == ~0ULL ? 0 : ~SIE_MASK & 0x5a5a5a5a5a5a5a5aULL);\n"
        "    if (((__u64)SIE_RECOMPUTE(dirty, n) & SIE_MASK) != (cpu(dirty, n) & SIE_MASK)) bad++; }\n"
        "  printf(\"%d\\n\", bad); return 0; }\n")
    assert run(tmp_path, f"sar{bits}", model_source("sar", bits) + main) == ["0"]
    assert re.search(r"#define SIE_RECOMPUTE\(s, iv\) .*__s" + str(bits), model_source("sar", bits))


def test_sites_compile_and_register_a_flags_slot(lab_headers: Path, tmp_path: Path) -> None:
    """The verifier-facing compile (clang, CO-RE against the lab kernel) of each new shape;
    a flags-rewriting recompute registers a flags slot beside its register slot."""
    from kernel_runtime.sie import module

    for op, bits in [("test", 32), ("and", 32), ("add", 64), ("xor", 16), ("sar", 64)]:
        knob = site_knob(op, bits)
        obj = render.compile_object(render.render_site(knob, knob.sites[0], 0),
                                    btf=lab_headers / "vmlinux", cache=tmp_path)
        assert obj.stat().st_size > 0
    assert module.slot_commands(0x20, site_knob("and", 32).sites[0]) == ["add reg 20 400", "add flags 20"]
    assert module.slot_commands(0x20, site_knob("test", 32).sites[0]) == ["add flags 20"]
    assert module.slot_commands(0x20, site_knob("sar", 64).sites[0]) == ["add reg 20 400"]
