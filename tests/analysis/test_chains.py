"""The multiply-chain finder and its proof on known bytes (no compiler, no kernel)."""

from __future__ import annotations

from analysis import chains, disasm, symstep

BASE = 0xFFFFFFFF81000000
# lea (%rax,%rax,4), %rdx; mov -0x7da9b1e0(,%r13,8), %rax; shl $8, %rdx; cmp %rax, %rdx
# (fits_capacity in __set_next_task_fair: a load scheduled into the chain), then the same
# chain storing its x*5 to (%rbx) half way
CODE = bytes.fromhex("488d14804a8b04ed204e568248c1e2084839c2"
                     "488d148048891348c1e208c3")


def test_load_inside_the_chain_is_a_passenger() -> None:
    insns = disasm.disassemble(CODE, BASE)
    (c,) = chains.find(insns, {1280}, range(0, 4))
    assert (c.start, c.end, c.members, c.dest, c.source, c.bits) == (0, 2, (0, 2), "rdx", "rax", 64)
    assert symstep.prove_product(CODE, BASE, BASE, 3, "rdx", "rax", 1280, 64)
    assert not symstep.prove_product(CODE, BASE, BASE, 3, "rdx", "rax", 1281, 64)


def test_store_of_a_chain_value_ends_the_run() -> None:
    insns = disasm.disassemble(CODE, BASE)
    assert chains.find(insns, {1280}, range(4, 8)) == []


def test_collapse_keeps_passengers_and_origins() -> None:
    insns = disasm.disassemble(CODE, BASE)
    (c,) = chains.find(insns, {1280}, range(0, 4))
    out, origin = chains.collapse(insns[:4], [(c, "chain64 V")])
    assert [i.mnemonic for i in out] == ["chain64 V", "mov", "cmp"] and origin == [0, 1, 3]
