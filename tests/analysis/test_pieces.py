"""Unit tests of the pure pieces: default folding, definition rewriting, affine fits."""

from __future__ import annotations

from pathlib import Path

from analysis import assemble, disasm, halves, objdiff, promote, recompile, seeds, sitebuild
from autotune.core import expr as exprs
from autotune.core.catalog import MemoryOperand

MACROS = seeds.known_macros(250)


def test_defaults_fold_at_config_hz() -> None:
    assert seeds.evaluate("((unsigned)(HZ/25))", MACROS) == 10
    assert seeds.evaluate("(15*HZ)", MACROS) == 3750
    assert seeds.evaluate("(2*USEC_PER_MSEC)", MACROS) == 2000
    assert seeds.evaluate("(1U << 10)", MACROS) == 1024
    assert seeds.evaluate("msecs_to_jiffies(2)", MACROS) == 1  # rounds up at HZ=250
    assert seeds.evaluate("(4 * sysctl_numa_balancing_scan_delay)", MACROS) is None
    assert seeds.evaluate("sizeof(struct x)", MACROS) is None


def test_rewrite_keeps_type_of_definition() -> None:
    # (SCHED_CAPACITY_SCALE / 100) is a long: a plain (21) would make GCC emit int
    # arithmetic (lea ecx) where the shipped code has long (add r14), even at V0
    seed = seeds.Seed("UTIL_EST_MARGIN", "macro", "kernel/sched/fair.c", 1,
                      "(SCHED_CAPACITY_SCALE / 100)", 10)
    line = "#define UTIL_EST_MARGIN (SCHED_CAPACITY_SCALE / 100)\n"
    assert recompile.rewrite_line(seed, line, 21) == \
        "#define UTIL_EST_MARGIN ((__typeof__((SCHED_CAPACITY_SCALE / 100)))(21))\n"
    seed = seeds.Seed("TCP_DELACK_MAX", "macro", "include/net/tcp.h", 1, "((unsigned)(HZ/5))", 50)
    line = "#define TCP_DELACK_MAX\t((unsigned)(HZ/5))\t/* maximal time to delay */\n"
    assert recompile.rewrite_line(seed, line, 101, typed=False) == \
        "#define TCP_DELACK_MAX\t((unsigned)(101))\t/* maximal time to delay */\n"
    seed = seeds.Seed("TCP_MAX_QUICKACKS", "macro", "x.h", 1, "16U", 16)
    assert recompile.rewrite_line(seed, "#define TCP_MAX_QUICKACKS\t16U\n", 33, typed=False) == \
        "#define TCP_MAX_QUICKACKS\t(33U)\n"
    lit = seeds.Seed("delta *= 4", "literal", "mm/shrinker.c", 1, "delta *= 4;", 4)
    assert recompile.rewrite_line(lit, "\tdelta *= 4;\n", 9) == "\tdelta *= 9;\n"


def test_value_pairs_differ_and_respect_shape() -> None:
    assert recompile.value_pairs(16)[0] == (32, 64)
    first, *later = recompile.value_pairs(10)
    assert len({10, *first}) == 3 and first[0] & (first[0] - 1) and first[1] > first[0]
    assert later and all(len({10, a, b}) == 3 for a, b in later)
    # a shift count stays below 32 (x << 32 on an int makes GCC drop the shift)
    assert all(0 < v <= 31 for p in recompile.value_pairs(8, shift=True) for v in p)
    assert recompile.value_pairs(8, shift=True)[0] == (9, 16)
    assert all(v & (v - 1) == 0 for p in recompile.value_pairs(8, pow2=True) for v in p)


def test_affine_fit_and_render() -> None:
    assert promote.fit((8, 16, 32), (63, 127, 255)) == (8, -1)
    assert promote.render(8, -1) == "V*8-1"
    # capstone shows 'and $-27' as 4294967269: the fit reads it signed
    assert promote.fit((50, 101, 152), (75, 24, 4294967269)) == (-1, 125)
    assert promote.render(-1, 125) == "-V+125"
    assert promote.fit((10, 21, 32), (1, 4, 5)) is None
    # DEF_PRIORITY/2 in vmscan: 12, 25, 38 -> 6, 12, 19 is V>>1, not affine
    assert promote.expression((12, 25, 38), (6, 12, 19)) == "(V >> 1)"
    assert promote.expression((50, 101, 152), (10, 9, 8)) is None


def test_file_line_seed_takes_last_literal(tmp_path: Path) -> None:
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "a.c").write_text("int x;\n\tif (n > 2 * 17)\n")
    seed = seeds.file_line_seed("kernel/a.c:2", tmp_path)
    assert seed.kind == "literal" and seed.default == 17


def test_divided_constants_fit_the_roundest_divisor_first() -> None:
    # BFQ_MIN_TT / NSEC_PER_USEC at V = 2000000, 4000001, 6000002
    assert promote.expressions((2_000_000, 4_000_001, 6_000_002), (2000, 4000, 6000)) == ["V/1000"]
    # the select idiom 'and $(V/1000000 - 8)': capstone shows the 64-bit mask unsigned
    fits = promote.expressions((2_000_000, 4_000_001, 6_000_002),
                               (2**64 - 6, 2**64 - 4, 2**64 - 2))
    assert "V/1000000-8" in fits[:2]
    # three points leave the divisor in an interval: V/4980736 fits them too
    fits = promote.expressions((100_000_000, 300_000_002, 500_000_003), (20, 60, 100))
    assert fits[0] == "V/5000000" and len(fits) > 1
    # the held-out pair tells d from d-1 and d+1: only V/d gives k-1, k there
    lo, hi = promote.held_out(100_000_000, "V/5000000")  # type: ignore[misc]
    assert (lo // 5_000_000, hi // 5_000_000) == (21, 22)
    assert (lo // 4_999_999, hi // 5_000_001) != (21, 22)
    assert promote.held_out(12, "(V >> 1)") == (15, 16)
    assert promote.held_out(10, "V*8-1") is None


def test_indexed_memory_input_is_saved_as_an_operand() -> None:
    # capacity_greater in update_sd_lb_stats: capstone gives an indexed operand no Insn.mem,
    # so the operand text must not pass for a register name: it is read as memory
    (imul,) = disasm.disassemble(bytes.fromhex("4a69b40e100b000036040000"), 0)
    assert imul.op_str == "rsi, qword ptr [rsi + r9 + 0xb10], 0x436" and imul.mem is None
    assert sitebuild._save_input(imul, 0) == MemoryOperand(base_reg="rsi", index_reg="r9",
                                                        disp=0xB10, size=8)


def test_rounded_constant_fits_on_a_lattice_only() -> None:
    # xfs_iwalk: round_up(V, 64) * 5 / 256 at 2048, 4096, 8192. V/51 fits the points (and
    # its held-out builds refute it); V*5/256 holds on multiples of 256, proven at V0+256
    # and V0+768, and the knob's domain keeps to them.
    assert promote.expressions((2048, 4096, 8192), (40, 80, 160))[:2] == ["V/51", "V*5/256"]
    assert promote.held_out(2048, "V*5/256") == (2304, 2816)
    assert promote.lattice((12, 25, 38), (6, 12, 19)) is None
    dom = assemble.domain(2048, [], [("multiple_of:256", "V*5/256 is exact on multiples")])
    assert [(c.kind, c.value) for c in dom.constraints] == [("multiple_of", 256)]
    assert dom.allowed_values() == list(range(256, dom.max + 1, 256))


def test_scaled_constant_fits_a_truncating_ratio() -> None:
    # bfq_init_bfqq: (2 * bfq_default_max_budget) / 3 at 16384, 32768, 65536; the slope
    # 10923/16384 of the lattice fits two points only
    assert promote.lattice((16384, 32768, 65536), (10922, 21845, 43690)) is None
    assert promote.expressions((16384, 32768, 65536), (10922, 21845, 43690)) == ["(V*2)/3"]
    lo, hi = promote.held_out(16384, "(V*2)/3")  # type: ignore[misc]
    assert (lo % 3, hi % 3) == (2, 0)  # V0+1, V0+2: the truncation of other remainders
    assert [exprs.parse("(V*2)/3").evaluate(v, "u32") for v in (lo, hi)] == [10923, 10924]
    assert promote.ratio((10, 21, 32), (1, 4, 5)) is None
    # bfq_insert_requests: 2 * (V / 32) is V/16 on the points; V0+d-1, V0+d tell them apart
    fits = promote.expressions((16384, 32768, 65536), (1024, 2048, 4096))
    assert fits == ["(V >> 4)", "V*1/16", "(V/32)*2", "(V/64)*4"]
    lo, _ = promote.held_out(16384, "(V/32)*2")  # type: ignore[misc]
    assert [exprs.parse(f).evaluate(lo) for f in fits] == [1027, 1027, 2 * (lo // 32), 1024]


def test_merged_movabs_half_that_is_a_power_of_two() -> None:
    # tcp_sk_init: plb_cong_thresh = (1 << TCP_PLB_SCALE) / 2 merged with another sysctl's
    # constant into one movabs, at V = 8, 9, 16
    imms = (0x80_3C0C_0300, 0x100_3C0C_0300, 0x8000_3C0C_0300)
    assert promote.expressions((8, 9, 16), imms) == []
    which, const, half = halves.split(imms)  # type: ignore[misc]
    assert (which, const, half) == ("high", 0x3C0C_0300, (128, 256, 32768))
    (text,) = [halves.compose(which, const, t) for t in promote.expressions((8, 9, 16), half)]
    assert text == "(u32((1 << V)/2) << 32) | 1007420160"
    assert [exprs.parse(text).evaluate(v, "u64") for v in (8, 9, 16)] == list(imms)
    assert promote.held_out(8, text) == (10, 11) and halves.power_bound(text) == 30
    dom = assemble.domain(8, [], [("shift", "a shift count"), ("max:30", "C's int")])
    assert (dom.min, dom.max) == (0, 30)
    # the low half varying, and one that goes negative, stays in its 32 bits
    assert halves.compose("low", 5, "V-20") == "21474836480 | u32(V-20)"
    assert exprs.parse("21474836480 | u32(V-20)").evaluate(10, "u64") == (5 << 32) | 0xFFFF_FFF6
    assert halves.split((1, 2, 3)) == ("low", 0, (1, 2, 3)) and halves.split((1 << 32, 2)) is None
    assert halves.power((8, 9, 16), (256, 512, 65536)) == "1 << V"
    assert halves.power((8, 9, 16), (256, 512, 65535)) is None


def test_scaled_power_of_two_and_its_int_bound() -> None:
    # tcp_select_initial_window: the default clamp U16_MAX << TCP_MAX_WSCALE at V = 14, 15, 28;
    # at 28 only the low 32 bits are left
    imms = (0x3FFF_C000, 0x7FFF_8000, 0xF000_0000)
    assert promote.expressions((14, 15, 28), imms) == ["65535 << V"]
    assert [exprs.parse("65535 << V").evaluate(v, "u32") for v in (14, 15, 28)] == list(imms)
    assert halves.power_bound("65535 << V") == 15  # 65535 << 16 is negative in C's int
    assert halves.power_bound("511 << V") == 22 and halves.power_bound("1 << (V+3)") == 27
    assert halves.power((14, 15, 28), (0x3FFF_C000, 0x7FFF_8000, 0xF000_0001)) is None
    assert halves.power((4, 5, 6), (96, 192, 384)) is None  # 6 << V: only an odd K is fitted


def test_add_of_128_encoded_as_sub_is_no_reshape() -> None:
    # sched_balance_rq's 'add ecx, V': at V=128 GCC writes 'sub ecx, -0x80' (an imm8)
    def fn(hexcode: str) -> dict[str, list[disasm.Insn]]:
        return {"f": disasm.disassemble(bytes.fromhex(hexcode), 0)}

    changes, reshaped = objdiff.diff([fn("83c120"), fn("83c140"), fn("83e980")])
    assert reshaped == [] and [(c.mnemonic, c.imms) for c in changes] == [("add", (32, 64, 128))]


def test_a_named_debian_vmlinux_finds_its_module_debug_files(tmp_path: Path) -> None:
    """``--kernel PATH`` on an extracted or installed Debian -dbg package analyses modules too."""
    from analysis.kernel_files import path_kernel

    debug = tmp_path / "usr" / "lib" / "debug"
    (debug / "boot").mkdir(parents=True)
    vmlinux = debug / "boot" / "vmlinux-6.12.9+deb12-amd64"
    vmlinux.write_bytes(b"")
    (tmp_path / "config").write_text("CONFIG_HZ=250\n")
    assert path_kernel(vmlinux, tmp_path, tmp_path / "config").modules_debug is None
    mods = debug / "lib" / "modules" / "6.12.9+deb12-amd64"
    mods.mkdir(parents=True)
    found = path_kernel(vmlinux, tmp_path, tmp_path / "config")
    assert found.modules_debug == mods and found.release == "6.12.9+deb12-amd64"
