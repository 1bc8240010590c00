"""Constants whose instruction meets memory (kernel/operands.c): known answers.

A compare against a field or a stack local, a pushed call argument and a multiply of a field
(plain or indexed) each become a site the runtime can address from the saved registers; a
per-CPU operand and an operand overwritten before the probe are told apart in instruction
sequences written here. A global compared or multiplied (rip-relative) is addressed by its
offset from the function's start.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from analysis import assemble, disasm, operands
from autotune.core.catalog import Catalog, MemoryLocation, MemoryOperand, Site

NAMES = ["CMP_MEM_LIMIT", "CMP_STACK_LIMIT", "PUSH_RETRIES", "MUL_MARGIN", "MUL_INDEXED_MARGIN",
         "CMP_GLOBAL_LIMIT", "MUL_GLOBAL_MARGIN"]


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


def _symbol(elf_path: Path, name: str) -> int:
    from elftools.elf.elffile import ELFFile

    with open(elf_path, "rb") as fh:
        symtab = ELFFile(fh).get_section_by_name(".symtab")
        return int(symtab.get_symbol_by_name(name)[0]["st_value"])  # type: ignore[union-attr]


def test_compare_against_a_global_is_addressed_from_the_function(catalog: Catalog,
                                                                corpus_elf: Path) -> None:
    (s,) = catalog.knob("CMP_GLOBAL_LIMIT").sites
    assert (s.function, s.synthesis, s.expr, s.expected_default) == ("defer_full", "flags", "V-1", 299)
    # 'cmp $0x12b, defer_count_like(%rip)': the cell's offset from defer_full's start
    cell = _symbol(corpus_elf, "defer_count_like") - _symbol(corpus_elf, "defer_full")
    assert s.compare_operand == MemoryOperand(base_reg="rip", disp=cell, size=4)
    assert s.probe_offset == s.cs_end  # the jg right after the cmp


def test_multiply_of_a_global_saves_the_global(catalog: Catalog, corpus_elf: Path) -> None:
    (s,) = catalog.knob("MUL_GLOBAL_MARGIN").sites
    assert (s.function, s.synthesis, s.recompute_op, s.save_offset) == \
        ("greater_global", "save-recompute", "mul", s.cs_start)
    cell = _symbol(corpus_elf, "global_cap_like") - _symbol(corpus_elf, "greater_global")
    assert s.save_input == MemoryOperand(base_reg="rip", disp=cell, size=8)


def test_module_global_is_refused() -> None:
    (cmp,) = _insns("833d000000002b")  # cmp dword ptr [rip], 0x2b: a .ko's unapplied relocation
    assert operands.compare_operand(cmp, 0x1000) == MemoryOperand(base_reg="rip", disp=7, size=4)
    with pytest.raises(ValueError, match="module's global"):
        operands.compare_operand(cmp, None)


def _insns(hex_code: str) -> list[disasm.Insn]:
    return disasm.disassemble(bytes.fromhex(hex_code), 0x1000)


def test_per_cpu_operand_has_no_address_in_the_registers() -> None:
    (cmp,) = _insns("65833d0000000030")  # cmp dword ptr gs:[rip], 0x30
    with pytest.raises(ValueError, match="per-CPU"):
        operands.compare_operand(cmp, 0x1000)
    (cmp,) = _insns("6583780830")  # cmp dword ptr gs:[rax + 8], 0x30
    assert cmp.mem is None and cmp.indexed is None
    with pytest.raises(ValueError, match="per-CPU"):
        operands.compare_operand(cmp, 0x1000)


def test_probe_stops_where_the_operand_changes() -> None:
    # cmp dword ptr [rdi + 0x10], 0x2f; mov edx, 1; mov rdi, rsi; jg
    insns = _insns("837f102f" "ba01000000" "4889f7" "7f00")
    cmp = operands.compare_operand(insns[0], 0x1000)
    assert operands.kept_until(insns, 0, insns[3].address, cmp) == insns[2].address
    # cmp dword ptr [rsp + 0xc], 0xc; mov dword ptr [rbx], 1; jg: a store may alias the local
    insns = _insns("837c240c0c" "c70301000000" "7f00")
    local = operands.compare_operand(insns[0], 0x1000)
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
