"""SIE rendering, caching and artefacts without a kernel: templates, defines, objects, payload.

Compiling uses the real clang and the lab kernel's own BTF (the headers package ships a
BTF-only vmlinux), fetched once through analysis.debian_kernel like the lab build does.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from autotune.core import expr
from autotune.core.catalog import Knob
from autotune.core.errors import BadInputError, EnvironmentProblem
from kernel_runtime.sie import artifacts, module, render
from kernel_runtime.sie.registers import reg_index
from kernel_runtime.sie.runtime import Kallsyms

LAB_RELEASE = "6.12.117+deb12-cloud-amd64"


def lab_knob(name: str) -> Knob:
    catalog = artifacts.bundled_catalog(LAB_RELEASE)
    assert catalog is not None
    return catalog.knob(name)


def synthetic(synthesis: str, **site: object) -> Knob:
    base: dict[str, object] = {"function": "f", "cs_start": 0, "cs_end": 4, "probe_offset": 4,
                               "location": "rax", "width": "u32", "expr": "V", "synthesis": synthesis,
                               "expected_default": 32}
    return Knob.model_validate({"name": "X", "subsystem": "t", "category": "batch", "default": 32,
                                "domain": {"min": 1, "max": 64}, "backend": "sie",
                                "sites": [base | site]})


FLAGS = synthetic("flags", location="flags", compare_operand="edx")
SAVE = synthetic("save-recompute", save_offset=0, recompute_op="and", expr="-V",
                 expected_default=0)
BYTE = synthetic("register", location="al", width="u8")
GUARDED_STORE = synthetic("memory", location={"base_reg": "r15", "disp": 1300, "size": 1},
                          width="u8", guard_offset=0)


def test_registers_follow_pt_regs_layout() -> None:
    assert [reg_index(r) for r in ("r15", "rbp", "rbx", "r8d", "eax", "cl", "dx", "rsi", "edi")] == \
        [0, 4, 5, 9, 10, 11, 12, 13, 14]
    with pytest.raises(BadInputError, match="sp and ip are never writable"):
        reg_index("rsp")


def test_defines_per_synthesis_type() -> None:
    pipe = render.render_site(lab_knob("PIPE_DEF_BUFFERS"), lab_knob("PIPE_DEF_BUFFERS").sites[1], 1)
    assert "#define SIE_REG 4\n" in pipe.source and "#define SIE_MERGE 0\n" in pipe.source
    assert "#define SIE_EXPECTED 0x10ULL" in pipe.source and pipe.template == "register.bpf.c"
    assert "#define SIE_GUARDED 1\n" in pipe.source
    shrink = lab_knob("SHRINK_BATCH")
    assert "#define SIE_GUARDED 0\n" in render.render_site(shrink, shrink.sites[0], 0).source
    delack = lab_knob("TCP_DELACK_MAX")
    mem = render.render_site(delack, delack.sites[0], 0).source
    assert "#define SIE_BASE_REG 5\n" in mem and "#define SIE_DISP (1232)" in mem
    assert "#define SIE_SIZE 4" in mem and "#define SIE_GUARDED 0\n" in mem
    guarded = render.render_site(GUARDED_STORE, GUARDED_STORE.sites[0], 0).source
    assert "#define SIE_GUARDED 1\n" in guarded and "int sie_guard(struct pt_regs *ctx)" in guarded
    assert '#include "sie_guard.bpf.h"' not in guarded  # inlined: the digest covers it
    flags = render.render_site(FLAGS, FLAGS.sites[0], 0).source
    assert "#define SIE_OPERAND_REG 12" in flags and "#define SIE_BITS 32" in flags
    save = render.render_site(SAVE, SAVE.sites[0], 0).source
    assert "((__u64)(s) & (__u64)(iv))" in save
    assert f"#define SIE_EXPECTED_IV {expr.parse('-V').evaluate(32, 'u32'):#x}ULL" in save
    assert "#define SIE_MERGE 1" in render.render_site(BYTE, BYTE.sites[0], 0).source


def test_digest_follows_what_the_program_does() -> None:
    knob = lab_knob("SHRINK_BATCH")
    site = knob.sites[0]
    first = render.render_site(knob, site, 0)
    assert render.render_site(knob, site, 0).digest == first.digest
    moved = site.model_copy(update={"probe_offset": site.probe_offset + 3})
    assert render.render_site(knob, moved, 0).digest == first.digest  # offset lives in the attach
    for change in ({"expected_default": 64}, {"expr": "V*2"}, {"location": "rdx"}):
        assert render.render_site(knob, site.model_copy(update=change), 0).digest != first.digest
    assert render.render_site(knob, site, 1).digest != first.digest


@pytest.mark.parametrize("site, why", [
    ({"synthesis": "register", "location": {"base_reg": "rbx", "disp": 8, "size": 4}}, "register location"),
    ({"synthesis": "memory"}, "base_reg"),
    ({"synthesis": "flags", "location": "flags"}, "compare_operand"),
    ({"synthesis": "save-recompute"}, "recompute_op"),
    ({"synthesis": "flags", "location": "flags", "compare_operand": "eax", "guard_offset": 0},
     "register and memory sites only"),
])
def test_incomplete_sites_are_refused(site: dict[str, object], why: str) -> None:
    knob = synthetic(str(site.pop("synthesis")), **site)
    with pytest.raises(BadInputError, match=why):
        render.render_site(knob, knob.sites[0], 0)


def test_bundled_catalog_is_consistent() -> None:
    catalog = artifacts.bundled_catalog(LAB_RELEASE)
    assert catalog is not None and catalog.kernel.release == LAB_RELEASE
    names = {k.name for k in catalog.knobs}
    assert {"PIPE_DEF_BUFFERS", "TCP_INIT_CWND", "SHRINK_BATCH", "TCP_DELACK_MAX"} <= names
    for knob in catalog.knobs:
        assert knob.default is not None
        knob.domain.check(knob.name, knob.default)
        for site in knob.sites:
            iv = expr.parse(site.expr).evaluate(knob.default, render.site_width(site))
            assert iv == site.expected_default, (knob.name, site.function)
    pipe = catalog.knob("PIPE_DEF_BUFFERS").domain
    assert [c.kind for c in pipe.constraints] == ["pow2"] and "mask" in pipe.constraints[0].reason
    with pytest.raises(BadInputError, match="pow2"):
        pipe.check("PIPE_DEF_BUFFERS", 24)


def test_slot_commands() -> None:
    pipe = lab_knob("PIPE_DEF_BUFFERS")
    assert module.slot_command(0xFFFF0010, pipe.sites[0]) == "add reg ffff0010 400"
    assert module.slot_command(0x10, lab_knob("TCP_DELACK_MAX").sites[0]) == "add mem 10 5 1232 4"
    assert module.slot_command(0x10, FLAGS.sites[0]) == "add flags 10"


def test_kallsyms_lookup(tmp_path: Path) -> None:
    table = tmp_path / "kallsyms"
    table.write_text("ffffffff81000000 T alpha\nffffffff81000040 t beta\nffffffff81000080 t beta\n"
                     "0000000000000000 T hidden\nffffffff81000100 D data\n")
    syms = Kallsyms.read(table)
    assert syms.address("alpha") == 0xFFFFFFFF81000000
    for name, why in [("beta", "defined 2 times"), ("hidden", "run as root"), ("data", "not in")]:
        with pytest.raises(EnvironmentProblem, match=why):
            syms.address(name)


def test_dry_run_prints_c_and_module_calls() -> None:
    from autotune.cli.knob_cmd import knob

    res = CliRunner().invoke(knob, ["load", "PIPE_DEF_BUFFERS", "--dry-run", "--release", LAB_RELEASE])
    assert res.exit_code == 0, res.output
    assert "echo 'add reg <alloc_pipe_info+0x81> 400'" in res.output
    assert "echo 'add reg <alloc_pipe_info+0x81> 10'" in res.output
    assert "int sie_site(struct pt_regs *ctx)" in res.output and "#define SIE_REG 4" in res.output
    bad = CliRunner().invoke(knob, ["set", "PIPE_DEF_BUFFERS", "12", "--dry-run", "--release", LAB_RELEASE])
    assert bad.exit_code != 0 and "pow2" in str(bad.exception)


def test_every_template_compiles_and_is_cached(lab_headers: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    btf = lab_headers / "vmlinux"
    rendered = [render.render_site(k, k.sites[0], 0) for k in (FLAGS, SAVE, BYTE, lab_knob("TCP_DELACK_MAX"),
                                                           GUARDED_STORE)]
    rendered += [render.render_span(), render.render_refusal()]
    objects = [render.compile_object(r, btf=btf, cache=tmp_path) for r in rendered]
    assert {o.name for o in objects} == {r.object_name for r in rendered}
    dump = subprocess.run(["bpftool", "btf", "dump", "file", str(objects[0])], capture_output=True,
                          text=True, check=True).stdout
    assert "sie_write_flags" in dump
    monkeypatch.setattr(shutil, "which", lambda _name, **_kw: None)  # a cache hit needs no clang
    assert render.compile_object(rendered[0], btf=btf, cache=tmp_path) == objects[0]
    other = render.render_site(FLAGS, FLAGS.sites[0], 5)
    with pytest.raises(EnvironmentProblem, match="no clang"):
        render.compile_object(other, btf=btf, cache=tmp_path)


def test_lab_payload(lab_headers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(tmp_path))
    from kernel_runtime.sie import lab_payload

    pairs = lab_payload(lab_headers.parents[3])
    guests = {g for _, g in pairs}
    assert "/opt/autotune/sie/sie_write.ko" in guests and "/opt/autotune/sie/catalog.json" in guests
    catalog = artifacts.bundled_catalog(LAB_RELEASE)
    assert catalog is not None
    wanted = {render.render_site(k, s, i).object_name for k in catalog.knobs for i, s in enumerate(k.sites)}
    assert {f"/opt/autotune/sie/bpf/{name}" for name in wanted} <= guests
    assert all(src.is_file() and src.stat().st_size > 0 for src, _ in pairs)
    ko = next(src for src, g in pairs if g.endswith(".ko"))
    release = lab_headers.name.removeprefix("linux-headers-")
    assert f"vermagic={release} ".encode() in ko.read_bytes()


def test_local_controller_includes_sie_only_where_it_works() -> None:
    from kernel_runtime.features import probe_features
    from kernel_runtime.host import local_controller

    controller = local_controller()
    ok, left = controller.usable([lab_knob("PIPE_DEF_BUFFERS")])
    if probe_features().sie_ready:
        assert "sie" in controller.backends
    else:
        assert "sie" not in controller.backends
        assert left == [("PIPE_DEF_BUFFERS", "no sie backend on this target")] and not ok


def log2_knob(**domain: object) -> Knob:
    """SHRINK_DIVISOR's shape: 'shr $4, %esi' where x / V is a shift by log2(V), V0 = 16."""
    knob = synthetic("save-recompute", location="esi", save_offset=0, recompute_op="shr",
                     expr="log2(V)", expected_default=4)
    return knob.model_copy(update={"default": 16, "domain": knob.domain.model_validate(
        {"min": 1, "max": 64, "constraints": [{"kind": "pow2", "reason": "ilog2"}]} | domain)})


def test_log2_shift_site_renders_a_masked_bounded_shift() -> None:
    knob = log2_knob()
    src = render.render_site(knob, knob.sites[0], 0).source
    assert "#define SIE_EXPECTED_IV 0x4ULL" in src
    # the 32-bit shr's input: only its low half shifts (upper garbage must not shift down)
    assert "#define SIE_RECOMPUTE(s, iv) (((__u64)(s) & SIE_MASK) >> (__u64)(iv))" in src
    iv_line = next(line for line in src.splitlines() if line.startswith("#define SIE_IV(v)"))
    assert "__builtin" not in iv_line and ">= 64ULL" in iv_line


@pytest.mark.parametrize(("domain", "why"), [
    ({"max": 1 << 40}, "shift count 32, outside 0..31"),
    ({"min": 0, "max": 64, "constraints": []}, "gives no shift count"),
])
def test_log2_shift_domain_must_keep_a_valid_count(domain: dict[str, object], why: str) -> None:
    knob = log2_knob(**domain)
    with pytest.raises(BadInputError, match=why):
        render.render_site(knob, knob.sites[0], 0)


def test_log2_site_compiles_for_bpf(lab_headers: Path, tmp_path: Path) -> None:
    knob = log2_knob()
    obj = render.compile_object(render.render_site(knob, knob.sites[0], 0),
                                btf=lab_headers / "vmlinux", cache=tmp_path)
    dump = subprocess.run(["llvm-objdump", "-d", str(obj)], capture_output=True, text=True,
                          check=True).stdout
    assert "sie_site" in dump and ">>=" in dump  # the recompute is a real BPF shift
