"""Sites whose operand is memory: a compare against a cell, a stack cell (rsp as the base), a
multiply's memory input, plain and indexed, a global (rip-relative) compared or multiplied.

Rendering and compiling only (no kernel): the defines each shape needs, the module slot that
lets a stack-cell probe write, and objects the verifier-facing compile accepts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.core.catalog import Knob
from autotune.core.errors import BadInputError
from kernel_runtime.sie import module, render
from kernel_runtime.sie.registers import SP_INDEX


def knob(default: int = 12, **site: object) -> Knob:
    base: dict[str, object] = {"function": "f", "cs_start": 0, "cs_end": 5, "probe_offset": 5,
                               "width": "u32", "expr": "V", "expected_default": default}
    return Knob.model_validate({"name": "X", "subsystem": "t", "category": "threshold",
                                "default": default, "domain": {"min": 1, "max": 4096},
                                "backend": "sie", "sites": [base | site]})


# cmp dword ptr [rsp + 8], 2; jg  (pcpu_alloc's slot loop)
STACK_CMP = knob(2, synthesis="flags", location="flags",
                 compare_operand={"base_reg": "rsp", "disp": 8, "size": 4})
# cmp byte ptr [rbx + 0x509], 3; jbe  (a socket field)
FIELD_CMP = knob(3, synthesis="flags", location="flags", width="u8",
                 compare_operand={"base_reg": "rbx", "disp": 0x509, "size": 1})
# push 7: 0(%rsp) after the push (migrate_pages_batch's stack argument)
PUSHED = knob(10, synthesis="memory", location={"base_reg": "rsp", "disp": 0, "size": 8},
              width="u64", expr="V-3", expected_default=7)
# imul rdx, qword ptr [rdx + 0x18], 0x436  (capacity_greater)
MUL = knob(1078, synthesis="save-recompute", recompute_op="mul", location="rdx", width="u64",
           save_offset=0, save_input={"base_reg": "rdx", "disp": 0x18, "size": 8})
# imul rsi, qword ptr [rsi + r9 + 0xb10], 0x436
MUL_INDEXED = knob(1078, synthesis="save-recompute", recompute_op="mul", location="rsi",
                   width="u64", save_offset=0,
                   save_input={"base_reg": "rsi", "index_reg": "r9", "disp": 0xB10, "size": 8})
# cmp dword ptr [rip + X], 1; je  (proc_dostring's sysctl_writes_strict): the cell's offset from
# the function's start, found at run time from the probe address and the attach cookie
GLOBAL_CMP = knob(1, synthesis="flags", location="flags",
                  compare_operand={"base_reg": "rip", "disp": 0x1B7A083, "size": 4})
# imul rax, qword ptr [rip + X], 0x44c  (a global multiplied)
MUL_GLOBAL = knob(1100, synthesis="save-recompute", recompute_op="mul", location="rax",
                  width="u64", save_offset=0, save_input={"base_reg": "rip", "disp": -0x40, "size": 8})


def source(k: Knob) -> str:
    return render.render_site(k, k.sites[0], 0).source


def test_compare_reads_its_memory_operand_at_the_probe() -> None:
    src = source(STACK_CMP)
    assert "#define SIE_OPERAND_IN_MEMORY 1\n" in src and "#define SIE_OPERAND_SIZE 4\n" in src
    assert f"#define SIE_OPERAND_ADDR(ctx) (SIE_REGS_WORD(ctx, {SP_INDEX}) + (__s64)(8))" in src
    assert "#define SIE_BITS 32\n" in src
    assert "#define SIE_OPERAND_ADDR(ctx) (SIE_REGS_WORD(ctx, 5) + (__s64)(1289))" in source(FIELD_CMP)
    assert module.slot_command(0x40, STACK_CMP.sites[0]) == "add flags 40"  # writes flags only


def test_stack_cell_is_addressed_from_the_saved_stack_pointer() -> None:
    src = source(PUSHED)
    assert f"#define SIE_BASE_REG {SP_INDEX}\n" in src and "#define SIE_DISP (0)" in src
    assert module.slot_command(0x40, PUSHED.sites[0]) == f"add mem 40 {SP_INDEX} 0 8"


def test_multiply_saves_its_memory_input() -> None:
    src = source(MUL)
    assert "#define SIE_INPUT_IN_MEMORY 1\n" in src and "#define SIE_REG 12\n" in src
    assert "#define SIE_INPUT_ADDR(ctx) (SIE_REGS_WORD(ctx, 12) + (__s64)(24))" in src
    assert "#define SIE_EXPECTED_IV 0x436ULL" in src
    indexed = source(MUL_INDEXED)
    assert ("#define SIE_INPUT_ADDR(ctx) (SIE_REGS_WORD(ctx, 13) + SIE_REGS_WORD(ctx, 8) * 1 "
            "+ (__s64)(2832))") in indexed


def test_global_is_addressed_from_the_function_start() -> None:
    src = source(GLOBAL_CMP)
    assert "#define SIE_OPERAND_ADDR(ctx) (SIE_FUNCTION_START(ctx) + (__s64)(28811395))" in src
    assert "bpf_get_attach_cookie(ctx)" in src  # the probe's offset, given at attach
    assert "#define SIE_INPUT_ADDR(ctx) (SIE_FUNCTION_START(ctx) + (__s64)(-64))" in source(MUL_GLOBAL)
    assert module.slot_command(0x40, GLOBAL_CMP.sites[0]) == "add flags 40"  # the cell is only read


@pytest.mark.parametrize("operand, why", [
    ({"base_reg": "", "disp": 0x1000, "size": 4}, "absolute operand"),
    ({"base_reg": "rip", "index_reg": "rax", "disp": 0, "size": 4}, "no index register"),
    ("dword ptr [rbx - 8]", "memory as text"),
    ({"base_reg": "rbx", "index_reg": "rsp", "disp": 0, "size": 4}, "cannot be written by SIE"),
])
def test_operands_no_register_addresses_are_refused(operand: object, why: str) -> None:
    k = knob(2, synthesis="flags", location="flags", compare_operand=operand)
    with pytest.raises(BadInputError, match=why):
        source(k)


def test_a_stack_pointer_is_never_a_written_register() -> None:
    with pytest.raises(BadInputError, match="sp and ip are never writable"):
        source(knob(7, synthesis="register", location="rsp"))


def test_shapes_compile(lab_headers: Path, tmp_path: Path) -> None:
    for k in (STACK_CMP, FIELD_CMP, PUSHED, MUL, MUL_INDEXED, GLOBAL_CMP, MUL_GLOBAL):
        obj = render.compile_object(render.render_site(k, k.sites[0], 0),
                                    btf=lab_headers / "vmlinux", cache=tmp_path)
        assert obj.stat().st_size > 0
