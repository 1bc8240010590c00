"""Save-recompute sites whose input is not their location: a 3-operand lea, a memory add.

Rendering and compiling only (no kernel): the defines each shape needs, the module slot
that lets its probe write, and objects that the verifier-facing compile accepts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from autotune.core import expr
from autotune.core.catalog import Knob
from autotune.core.errors import BadInputError
from kernel_runtime.sie import module, render


def knob(default: int = 2000, **site: object) -> Knob:
    base: dict[str, object] = {"function": "f", "cs_start": 0, "cs_end": 6, "probe_offset": 6,
                               "save_offset": 0, "synthesis": "save-recompute", "recompute_op": "add",
                               "location": "edi", "width": "u32", "expr": "V",
                               "expected_default": 2000}
    domain: dict[str, object] = {"min": 1, "max": 8000}
    if site.get("recompute_op") == "sdiv_pow2":
        domain = {"min": 1, "max": 16, "constraints": [{"kind": "pow2", "reason": "a shift"}]}
    return Knob.model_validate({"name": "X", "subsystem": "t", "category": "interval",
                                "default": default, "domain": domain,
                                "backend": "sie", "sites": [base | site]})


LEA = knob(save_input="rbp")                                  # lea 0x7d0(%rbp), %edi
STAMP = knob(default=2, location={"base_reg": "rbp", "disp": 0xED0, "size": 8}, width="u64",
             expr="V*4000000", expected_default=8_000_000)   # add $0x7a1200, 0xed0(%rbp)
SUB16 = knob(location="ax", width="u16", expr="-(V)", expected_default=(-2000) % (1 << 16))


def test_lea_saves_its_source_and_writes_its_destination() -> None:
    src = render.render_site(LEA, LEA.sites[0], 0).source
    assert "#define SIE_IN_MEMORY 0\n" in src and "#define SIE_REG 14\n" in src
    assert "#define SIE_INPUT_REG 4\n" in src and "#define SIE_MERGE 0\n" in src
    assert "#define SIE_EXPECTED_IV 0x7d0ULL" in src
    assert module.slot_command(0x20, LEA.sites[0]) == f"add reg 20 {1 << 14:x}"  # edi only


def test_memory_add_rewrites_its_own_cell() -> None:
    src = render.render_site(STAMP, STAMP.sites[0], 0).source
    assert "#define SIE_IN_MEMORY 1\n" in src and "#define SIE_BASE_REG 4\n" in src
    assert "#define SIE_DISP (3792)" in src and "#define SIE_SIZE 8\n" in src
    assert "#define SIE_EXPECTED_IV 0x7a1200ULL" in src
    assert module.slot_command(0x20, STAMP.sites[0]) == "add mem 20 4 3792 8"


def test_sixteen_bit_register_keeps_its_upper_bits() -> None:
    src = render.render_site(SUB16, SUB16.sites[0], 0).source
    assert "#define SIE_MERGE 1\n" in src and "#define SIE_INPUT_REG 10\n" in src


def test_shapes_compile(lab_headers: Path, tmp_path: Path) -> None:
    for k in (LEA, STAMP, SUB16, division("u64"), division("u32"), PERIOD):
        obj = render.compile_object(render.render_site(k, k.sites[0], 0), btf=lab_headers / "vmlinux",
                                    cache=tmp_path)
        assert obj.stat().st_size > 0


def division(width: str) -> Knob:
    """``delta = freeable / 2`` as GCC's signed-division idiom: recomputed from the dividend."""
    return knob(default=2, location="rax" if width == "u64" else "eax", width=width,
                save_input="rbx", expr="log2(V)", recompute_op="sdiv_pow2", expected_default=1)


@pytest.mark.parametrize("width, bits", [("u64", 64), ("u32", 32)])
def test_signed_division_rounds_toward_zero_like_c(width: str, bits: int, tmp_path: Path) -> None:
    """The rendered recompute, compiled by the host's gcc, divides exactly as C does."""
    k = division(width)
    src = render.render_site(k, k.sites[0], 0).source
    define = next(line for line in src.splitlines() if line.startswith("#define SIE_RECOMPUTE"))
    xs = [0, 1, 7, -1, -7, -8, 1 << 40, -(1 << 40) - 3, (1 << 31) - 1, -(1 << 31)]
    prog = tmp_path / "div.c"
    prog.write_text(
        "#include <stdio.h>\ntypedef long long __s64; typedef unsigned long long __u64;\n"
        "typedef int __s32; typedef short __s16; typedef signed char __s8;\n" + define + "\n"
        "int main(void) {\n"
        f"  long long xs[] = {{{', '.join(f'{x}LL' for x in xs)}}};\n"
        "  for (int i = 0; i < (int)(sizeof(xs) / sizeof(xs[0])); i++)\n"
        "    for (int n = 0; n < 6; n++)\n"
        f"      printf(\"%llu\\n\", SIE_RECOMPUTE((__u64)xs[i] & {(1 << bits) - 1:#x}ULL, n) & {(1 << bits) - 1:#x}ULL);\n"
        "  return 0;\n}\n")
    subprocess.run(["gcc", "-O2", "-o", str(tmp_path / "div"), str(prog)], check=True)
    got = [int(v) for v in subprocess.run([str(tmp_path / "div")], capture_output=True, text=True,
                                          check=True).stdout.split()]
    want = []
    for x in xs:
        x = expr.wrap(x, "s64" if bits == 64 else "s32")
        for n in range(6):
            q = abs(x) // (1 << n) * (1 if x >= 0 else -1)  # C truncates toward zero
            want.append(q & ((1 << bits) - 1))
    assert got == want


PERIOD = knob(default=7, expr="-(V)", expected_default=(-7) % (1 << 32),
              recompute_flags=True)  # sub $7, %edi; je


def test_sub_with_read_flags_rewrites_them_too() -> None:
    src = render.render_site(PERIOD, PERIOD.sites[0], 0).source
    assert "#define SIE_RECOMPUTE_FLAGS 1\n" in src and "#define SIE_BITS 32\n" in src
    assert "#define SIE_RECOMPUTE_FLAGS 0\n" in render.render_site(LEA, LEA.sites[0], 0).source
    assert module.slot_commands(0x20, PERIOD.sites[0]) == [f"add reg 20 {1 << 14:x}", "add flags 20"]
    assert module.slot_commands(0x20, LEA.sites[0]) == [f"add reg 20 {1 << 14:x}"]
    with pytest.raises(BadInputError, match="recompute_flags of 'sub' needs a register location"):
        bad = STAMP.sites[0].model_copy(update={"recompute_flags": True})
        render.render_site(STAMP, bad, 0)
