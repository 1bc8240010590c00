"""Who writes which SIE map word, the maps' layouts, and the order of equivalent probe
offsets — on the generated C and the compiled objects, without a kernel (the lab tests in
``test_sie_transitions_lab.py`` run the same programs)."""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest

from autotune.core.catalog import Knob
from kernel_runtime.backend import Scope
from kernel_runtime.sie import artifacts, probes, render, values

LAB_RELEASE = "6.12.117+deb12-cloud-amd64"
_WRITE = re.compile(r"\bctl->\w+\s*(?:[-+|&^]?=(?!=)|\+\+|--)|&ctl->")


def _programs() -> list[render.Rendered]:
    catalog = artifacts.bundled_catalog(LAB_RELEASE)
    assert catalog is not None
    out = [render.render_site(k, s, i) for k in catalog.knobs for i, s in enumerate(k.sites)]
    return out + [render.render_span(), render.render_refusal()]


def _code(source: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", source, flags=re.S)


def test_no_program_writes_the_user_space_control_word() -> None:
    """sie_ctl is rewritten whole by every value change: a BPF write there (the self-check's
    `disabled` once was) is undone by a change that read the word before it."""
    programs = _programs()
    assert {p.template for p in programs} >= {"register.bpf.c", "memory.bpf.c", "flags.bpf.c",
                                               "span.bpf.c"}
    for p in programs:
        code = _code(p.source)
        assert not _WRITE.search(code), (p.template, _WRITE.search(code))
        ctl = re.search(r"struct sie_ctl \{(.*?)\};", code, flags=re.S)
        assert ctl is not None and "disabled" not in ctl[1]
        assert "__sync_fetch_and_or(&live->disabled, 1)" in code
    span = _code(render.render_span().source)
    assert "__sync_val_compare_and_swap(&live->gate" in span


def test_map_layouts_match_user_space(lab_headers: Path, tmp_path: Path) -> None:
    """The struct sizes in the compiled object's BTF are the ones values.py packs."""
    obj = render.compile_object(render.render_span(), btf=lab_headers / "vmlinux", cache=tmp_path)
    dump = subprocess.run(["bpftool", "btf", "dump", "file", str(obj)], capture_output=True,
                          text=True, check=True).stdout
    sizes = {m[1]: int(m[2]) for m in re.finditer(r"STRUCT '(\w+)' size=(\d+)", dump)}
    assert sizes["sie_ctl"] == struct.calcsize(values._CTL) == len(values.initial_control("global"))
    assert sizes["sie_live"] == struct.calcsize(values._LIVE)
    assert sizes["sie_key"] == struct.calcsize(values._KEY)
    assert sizes["sie_val"] == struct.calcsize(values._VAL)


def test_scope_keys_carry_the_generation() -> None:
    assert values.scope_key(Scope("pid", 7), 3) == struct.pack("<IIQ", 2, 3, 7)
    assert values.scope_key(Scope()) == struct.pack("<IIQ", 0, 0, 0)
    assert values.MODES == {"immediate": 0, "per-task": 1, "global": 2}
    header = render.template_text(render.COMMON_HEADER)
    for name, number in values.MODES.items():
        assert f"#define SIE_MODE_{name.upper().replace('-', '_')} {number}\n" in header


def test_live_state_fields() -> None:
    state = values.Live(gate=(5 << 32) | 2, disabled=0, switched_ns=0, switches=5)
    assert (state.generation, state.inside) == (5, 2)


@pytest.mark.parametrize("primary, others, expected", [
    (0xC, [], [0xC]),
    (0xC, [0xC, 0xF, 0x11], [0xC, 0xF, 0x11]),
    (0xF, [0xC, 0xF], [0xF, 0xC]),
])
def test_equivalent_offsets_catalog_first(primary: int, others: list[int], expected: list[int]) -> None:
    knob = Knob.model_validate({
        "name": "X", "subsystem": "t", "category": "batch", "default": 8,
        "domain": {"min": 1, "max": 64}, "backend": "sie",
        "sites": [{"function": "f", "cs_start": 0, "cs_end": 4, "probe_offset": primary,
                   "probe_offsets": others, "location": "eax", "width": "u32", "expr": "V",
                   "synthesis": "register", "expected_default": 8}]})
    assert probes.offsets_to_try(knob.sites[0]) == expected
