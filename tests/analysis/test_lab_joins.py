"""Sites whose probe another path reaches, on the real lab kernel (Debian 6.12 cloud).

TCP_ATO_MIN's stores in tcp_dec_quickack_mode (inlined into __tcp_transmit_skb) and
tcp_event_data_recv are followed by a join: 'quick == 0' jumps to the instruction right
after the store, where the cell holds the socket's own ato. Unguarded, the lab's self-check
failed there under redis (and an ato that happened to equal 10 would have been rewritten).
"""

from __future__ import annotations

import pytest

from analysis import analyze, disasm
from analysis.elfimage import Image
from autotune.core.catalog import Catalog, MemoryLocation


@pytest.fixture(scope="module")
def catalog(lab_files) -> Catalog:  # type: ignore[no-untyped-def]
    return analyze.analyze(lab_files, names=["TCP_ATO_MIN"], oracle=False, jobs=1,
                           force=True).catalog


def test_join_right_after_the_store_is_found(lab_files) -> None:  # type: ignore[no-untyped-def]
    image = Image(lab_files.vmlinux)
    (func,) = image.by_name("__tcp_transmit_skb")
    insns = disasm.disassemble(image.code(func), func.start)
    at = {i.address - func.start: i for i in insns}
    assert (at[0x430].mnemonic, at[0x430].op_str) == ("mov", "byte ptr [r15 + 0x514], 0xa")
    assert disasm.jump_target(at[0x413]) == func.start + 0x438  # je: quick == 0
    assert disasm.first_join(insns, func.start + 0x438, func.start + 0x440) == func.start + 0x438
    assert disasm.first_join(insns, func.start + 0x415, func.start + 0x430) is None


@pytest.mark.parametrize("function, seed, probe", [
    ("__tcp_transmit_skb", 0x430, 0x438),   # je from +0x413
    ("tcp_event_data_recv", 0xbe, 0xc5),    # jmp/jae from +0x13b, +0x176, ...
    ("tcp_data_queue", 0x751, 0x759),
])
def test_store_followed_by_a_join_is_guarded_on_its_own_path(catalog: Catalog, function: str,
                                                            seed: int, probe: int) -> None:
    (s,) = [s for s in catalog.knob("TCP_ATO_MIN").sites
            if s.function == function and s.cs_start == seed]
    assert isinstance(s.location, MemoryLocation) and s.location.disp == 0x514
    assert (s.probe_offsets, s.guard_offset, s.synthesis) == ([probe], seed, "memory")


def test_store_without_a_join_needs_no_guard(catalog: Catalog) -> None:
    sites = catalog.knob("TCP_ATO_MIN").sites
    plain = [s for s in sites if s.function == "__tcp_send_ack.part.0"]
    assert [(s.cs_start, s.guard_offset) for s in plain] == [(0xfd, None), (0x13e, None)]
    assert sum(s.guard_offset is not None for s in sites) == 3
