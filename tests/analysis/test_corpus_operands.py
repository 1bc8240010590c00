"""Constants whose instruction meets memory (kernel/operands.c): known answers.

A compare against a field or a stack local, a pushed call argument and a multiply of a field
(plain or indexed) each become a site the runtime can address from the saved registers; a
per-CPU operand and an operand overwritten before the probe are told apart in instruction
sequences written here.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from analysis import assemble, disasm, operands
from autotune.core.catalog import Catalog, MemoryLocation, MemoryOperand, Site

NAMES = ["CMP_MEM_LIMIT", "CMP_STACK_LIMIT", "PUSH_RETRIES", "MUL_MARGIN", "MUL_INDEXED_MARGIN"]


@pytest.fixture(scope="module")
def catalog(corpus_catalog: Callable[[list[str]], Catalog]) -> Catalog:
    return corpus_catalog(NAMES)


def test_compare_against_a_field(catalog: Catalog) -> None:
    (s,) = catalog.knob("CMP_MEM_LIMIT").sites
    assert (s.function, s.synthesis, s.location, s.expr, s.width) == \
        ("queue_full", "flags", "flags", "V-1", "u32")
    assert s.compare_operand == MemoryOperand(base_reg="rdi", disp=0x10, size=4)
    assert s.probe_offset == s.cs_end  # the jg right after the cmp


def test_compare_against_a_stack_local(catalog: Catalog) -> None:
    (s,) = catalog.knob("CMP_STACK_LIMIT").sites
    assert (s.function, s.synthesis, s.expr, s.expected_default) == \
        ("stack_limit", "flags", "V", 12)
    assert s.compare_operand == MemoryOperand(base_reg="rsp", disp=0xC, size=4)
    # 'mov $1, %eax' sits between the cmp and the jg: both keep the local, both may hold the probe
    assert sorted(s.probe_offsets) == [s.cs_start + 5, s.cs_end]


def test_pushed_argument_is_a_stack_memory_site(catalog: Catalog) -> None:
    knob = catalog.knob("PUSH_RETRIES")
    (s,) = knob.sites
    assert (s.function, s.synthesis, s.expr, s.width, s.expected_default) == \
        ("retry_pages", "memory", "V", "u64", 10)
    assert s.location == MemoryLocation(base_reg="rsp", disp=0, size=8)
    assert s.probe_offsets == [s.probe_offset] == [s.cs_start + 2]  # the call after 'push $0xa'


@pytest.mark.parametrize("name, function, operand", [
    ("MUL_MARGIN", "greater", MemoryOperand(base_reg="rdi", disp=0x18, size=8)),
    ("MUL_INDEXED_MARGIN", "greater_at",
     MemoryOperand(base_reg="rsi", index_reg="rdi", scale=1, disp=0x18, size=8)),
])
def test_multiply_of_a_field_saves_the_field(catalog: Catalog, name: str, function: str,
                                             operand: MemoryOperand) -> None:
    (s,) = catalog.knob(name).sites
    assert (s.function, s.synthesis, s.recompute_op, s.location) == \
        (function, "save-recompute", "mul", "rax")
    assert s.save_input == operand and s.save_offset == s.cs_start
    assert s.expected_default == 1078


def _insns(hex_code: str) -> list[disasm.Insn]:
    return disasm.disassemble(bytes.fromhex(hex_code), 0x1000)


def test_per_cpu_operand_has_no_address_in_the_registers() -> None:
    (cmp,) = _insns("65833d0000000030")  # cmp dword ptr gs:[rip], 0x30
    with pytest.raises(ValueError, match="per-CPU, rip-relative or absolute"):
        operands.compare_operand(cmp)
    (cmp,) = _insns("6583780830")  # cmp dword ptr gs:[rax + 8], 0x30
    assert cmp.mem is None and cmp.indexed is None
    with pytest.raises(ValueError, match="per-CPU"):
        operands.compare_operand(cmp)


def test_probe_stops_where_the_operand_changes() -> None:
    # cmp dword ptr [rdi + 0x10], 0x2f; mov edx, 1; mov rdi, rsi; jg
    insns = _insns("837f102f" "ba01000000" "4889f7" "7f00")
    cmp = operands.compare_operand(insns[0])
    assert operands.kept_until(insns, 0, insns[3].address, cmp) == insns[2].address
    # cmp dword ptr [rsp + 0xc], 0xc; mov dword ptr [rbx], 1; jg: a store may alias the local
    insns = _insns("837c240c0c" "c70301000000" "7f00")
    local = operands.compare_operand(insns[0])
    assert operands.kept_until(insns, 0, insns[2].address, local) == insns[1].address
    # cmp edi, 0x2f; mov edi, 1; jg: a register operand overwritten is no operand either
    insns = _insns("83ff2f" "bf01000000" "7f00")
    assert operands.kept_until(insns, 0, insns[2].address, "edi") == insns[1].address


def test_offset_encoding_keeps_its_count_nonnegative() -> None:
    # migrate_pages_sync pushes NR_MAX_MIGRATE_PAGES_RETRY - 3: below V=3 the count is negative
    pushed = Site(function="f", cs_start=0, cs_end=2, probe_offset=2, expr="V-3", width="u64",
                  location=MemoryLocation(base_reg="rsp", disp=0, size=8), synthesis="memory",
                  expected_default=7)
    assert assemble.domain(10, [pushed], []).min == 3
    assert assemble.domain(10, [pushed.model_copy(update={"expr": "-V"})], []).min == 1
