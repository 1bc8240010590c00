"""objdiff on builds that differ only in instruction order (known answers, no compiler)."""

from __future__ import annotations

from analysis import objdiff
from analysis.disasm import Insn


def insn(mnemonic: str, op_str: str, imms: tuple[int, ...] = ()) -> Insn:
    return Insn(0, 2, mnemonic, op_str, imms, 4, op_str.split(",")[0], None, False,
                mnemonic in ("xor", "add", "cmp"), mnemonic in ("call", "jmp"), False)


LEA = insn("lea", "rdx, [rbx + 0xd0]")
CALL = insn("call", "0x10")
EDI = insn("mov", "edi, 0x2000", (0x2000,))


def test_xor_scheduled_elsewhere_than_mov_is_no_reshape() -> None:
    # V=0: GCC puts the flag-clobbering 'xor' early; V=1,2: 'mov $V' lands after the edi load
    v0 = [LEA, insn("xor", "ecx, ecx"), EDI, CALL]
    v1 = [LEA, EDI, insn("mov", "ecx, 1", (1,)), CALL]
    v2 = [LEA, EDI, insn("mov", "ecx, 2", (2,)), CALL]
    changes, reshaped = objdiff.diff([{"f": v0}, {"f": v1}, {"f": v2}])
    assert reshaped == []
    assert [(c.index, c.mnemonic, c.imms) for c in changes] == [(1, "xor", (0, 1, 2))]


def test_different_instructions_are_reshaped() -> None:
    v0 = [LEA, insn("lea", "eax, [rdx*8]"), insn("sub", "eax, edx"), CALL]
    v1 = [LEA, insn("mov", "eax, edx"), insn("shl", "eax, 4", (4,)), insn("sub", "eax, edx"), CALL]
    _, reshaped = objdiff.diff([{"f": v0}, {"f": v1}, {"f": v1}])
    assert reshaped == ["f"]


def test_moved_instruction_without_immediate_is_a_reschedule() -> None:
    # tcp_init_transfer at TCP_INIT_CWND=5: a 'cmp' of two registers moves past a store
    cmp, store = insn("cmp", "eax, edx"), insn("mov", "dword ptr [rbx + 0x5ac], edx")
    v0 = [EDI, store, cmp, CALL]
    v1 = [insn("mov", "edi, 0x3000", (0x3000,)), cmp, store, CALL]
    v2 = [insn("mov", "edi, 0x4000", (0x4000,)), cmp, store, CALL]
    changes, reshaped = objdiff.diff([{"f": v0}, {"f": v1}, {"f": v2}])
    assert reshaped == [] and [(c.index, c.imms) for c in changes] == [(0, (0x2000, 0x3000, 0x4000))]


def test_moved_instruction_with_an_immediate_is_reshaped() -> None:
    # with other registers (no permutation of equal instructions) the add moves past two leas
    lea2 = insn("lea", "rsi, [rbx + 0x8]")
    v0 = [EDI, insn("add", "eax, 0x10", (0x10,)), LEA, lea2, CALL]
    v1 = [EDI, LEA, lea2, insn("add", "ecx, 0x10", (0x10,)), CALL]
    _, reshaped = objdiff.diff([{"f": v0}, {"f": v1}, {"f": v1}])
    assert reshaped == ["f"]


def test_min_with_swapped_compare_is_one_operation() -> None:
    # min3 in tcp_init_buffer_space: 'cmp eax, edx; cmova eax, edx' at V=10, the registers
    # swapped ('cmp edx, eax; cmovbe eax, edx') at V=21: the same min
    v0 = [EDI, insn("cmp", "eax, edx"), insn("cmova", "eax, edx"), CALL]
    v1 = [insn("mov", "edi, 0x3000", (0x3000,)), insn("cmp", "edx, eax"), insn("cmovbe", "eax, edx"),
          CALL]
    _, reshaped = objdiff.diff([{"f": v0}, {"f": v1}, {"f": v1}])
    assert reshaped == []
    v2 = [EDI, insn("cmp", "eax, edx"), insn("cmovg", "eax, edx"), CALL]  # a signed order is not
    _, reshaped = objdiff.diff([{"f": v0}, {"f": v2}, {"f": v2}])
    assert reshaped == ["f"]
