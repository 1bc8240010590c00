"""Catalog facts on the real lab kernel (Debian 6.12 cloud, CONFIG_HZ=250), no oracle.

Every expected site below was read off the shipped binary by hand and, for the SIE-relevant
ones, confirmed by the recompile oracle (see test_oracle.py and docs/decisions.md).
"""

from __future__ import annotations

import pytest

from analysis import analyze
from autotune.core.catalog import Catalog, MemoryLocation

NAMES = ["TCP_INIT_CWND", "MAX_SOFTIRQ_RESTART", "BLK_MAX_REQUEST_COUNT", "TCP_DELACK_MAX",
         "PIPE_DEF_BUFFERS", "SBQ_WAKE_BATCH", "TCP_RTO_MIN", "SHRINK_BATCH", "EP_MAX_NESTS",
         "NFS4_POLL_RETRY_MAX", "MAX_NR_FOLIOS_PER_FREE", "SMC_TX_WORK_DELAY", "bfq_back_max",
         "XFS_DISCARD_MAX_EXAMINE", "KFREE_DRAIN_JIFFIES", "RCU_JIFFIES_FQS_DIV",
         "bfq_stats_min_budgets", "bfq_late_stable_merging", "PIPE_MIN_DEF_BUFFERS",
         "LAST_INO_BATCH"]


@pytest.fixture(scope="module")
def catalog(lab_files) -> Catalog:  # type: ignore[no-untyped-def]
    result = analyze.analyze(lab_files, names=NAMES, oracle=False, jobs=2, force=True)
    assert result.catalog.kernel.config_hz == 250
    return result.catalog


def site(catalog: Catalog, name: str, function: str, cs_start: int):  # type: ignore[no-untyped-def]
    for s in catalog.knob(name).sites:
        if s.function == function and s.cs_start == cs_start:
            return s
    raise AssertionError(f"{name}: no site at {function}+{cs_start:#x}: "
                         f"{[(s.function, hex(s.cs_start)) for s in catalog.knob(name).sites]}")


def reason(catalog: Catalog, name: str) -> str:
    return next(u.reason for u in catalog.unsupported if u.name == name)


def test_tcp_init_cwnd_merged_movabs_and_tcp_init_cwnd(catalog: Catalog) -> None:
    s = site(catalog, "TCP_INIT_CWND", "tcp_init_sock", 0xcb)
    assert (s.location, s.expr, s.synthesis) == ("rax", "(V << 32) | 536", "register")
    assert s.expected_default == (10 << 32) | 536 and s.cs_end == 0xd5
    for off, reg in ((0x9, "eax"), (0x17, "edx")):  # as in the SIE hand-written catalog
        s = site(catalog, "TCP_INIT_CWND", "tcp_init_cwnd", off)
        assert (s.location, s.expr, s.expected_default) == (reg, "V", 10)


def test_max_softirq_restart_without_its_own_line_rows(catalog: Catalog) -> None:
    s = site(catalog, "MAX_SOFTIRQ_RESTART", "handle_softirqs", 0x54)
    assert (s.location, s.expr, s.synthesis, s.expected_default) == ("ebp", "V", "register", 10)


def test_blk_max_request_count_select_idiom(catalog: Catalog) -> None:
    a = site(catalog, "BLK_MAX_REQUEST_COUNT", "blk_add_rq_to_plug", 0x28)
    b = site(catalog, "BLK_MAX_REQUEST_COUNT", "blk_add_rq_to_plug", 0x2b)
    assert (a.expr, a.recompute_op, a.synthesis) == ("-V", "and", "save-recompute")
    assert (b.expr, b.recompute_op, b.expected_default) == ("V*2", "add", 64)


def test_tcp_delack_max_jiffies_store_and_range_check(catalog: Catalog) -> None:
    assert catalog.knob("TCP_DELACK_MAX").default == 50  # HZ/5 at CONFIG_HZ=250
    s = site(catalog, "TCP_DELACK_MAX", "tcp_init_sock", 0x70)
    assert s.location == MemoryLocation(base_reg="rbx", disp=1232, size=4) and s.expr == "V"
    s = site(catalog, "TCP_DELACK_MAX", "sol_tcp_sockopt", 0x301)
    assert (s.location, s.expr, s.expected_default) == ("flags", "V-2", 48)


def test_pipe_def_buffers_copies_in_tracing_are_notrace(catalog: Catalog) -> None:
    # alloc_pipe_info's copy is found (the hand catalog tunes only it), but the splice code
    # of kernel/trace/ has copies too, where no kprobe can attach: no knob as a whole
    assert "notrace functions (tracing_buffers_splice_read" in reason(catalog, "PIPE_DEF_BUFFERS")


def test_sbq_wake_batch_notrace_and_shrink_batch(catalog: Catalog) -> None:
    # lib/ is built without ftrace: the lab refused every kprobe in sbitmap's functions
    assert "notrace functions (sbitmap_queue_init_node" in reason(catalog, "SBQ_WAKE_BATCH")
    s = site(catalog, "SHRINK_BATCH", "do_shrink_slab", 0x7)
    assert (s.location, s.expected_default) == ("eax", 128)


def test_tcp_rto_min_beside_timeout_init(catalog: Catalog) -> None:
    s = site(catalog, "TCP_RTO_MIN", "tcp_disconnect", 0x17f)
    assert (s.location, s.expr) == ("rax", "(V << 32) | 250")  # TCP_TIMEOUT_INIT=HZ beside


def test_ep_max_nests_compare_forms(catalog: Catalog) -> None:
    s = site(catalog, "EP_MAX_NESTS", "ep_loop_check_proc", 0x80)
    assert (s.location, s.expr) == ("flags", "V+1")


def test_module_sites_carry_their_module(catalog: Catalog) -> None:
    knob = catalog.knob("NFS4_POLL_RETRY_MAX")
    assert knob.default == 3750  # 15*HZ
    s = site(catalog, "NFS4_POLL_RETRY_MAX", "nfs4_handle_exception", 0xd3)
    assert (s.module, s.expr, s.expected_default) == ("nfsv4", "V*2", 7500)


def test_select_with_sbb_is_not_a_mask(catalog: Catalog) -> None:
    s = site(catalog, "KFREE_DRAIN_JIFFIES", "__schedule_delayed_monitor_work", 0x28)
    assert (s.expr, s.recompute_op) == ("V-1", "and")
    assert not catalog.knob("KFREE_DRAIN_JIFFIES").domain.constraints


def test_static_const_is_folded_like_a_macro(catalog: Catalog) -> None:
    # block/bfq-iosched.c: static const int bfq_back_max = 16 * 1024; (bfq is a module) —
    # its only use copies it into the member of the same name, bfqd->bfq_back_max, merged
    # with bfq_back_penalty (2) into one movabs
    knob = catalog.knob("bfq_back_max")
    assert knob.default == 16384 and knob.source == "block/bfq-iosched.c:168"
    (s,) = knob.sites
    assert (s.module, s.function, s.synthesis, s.expr) == \
        ("bfq", "bfq_init_queue", "register", "(V << 32) | 2")


def test_static_const_compares_and_jiffies(catalog: Catalog) -> None:
    # 'budgets_assigned < bfq_stats_min_budgets' (194) is 'cmp $193' in three functions
    knob = catalog.knob("bfq_stats_min_budgets")
    assert knob.default == 194 and {s.expr for s in knob.sites} == {"V-1"}
    assert {s.function for s in knob.sites} == {"bfq_init_bfqq", "bfq_insert_requests",
                                                 "bfq_bfqq_expire"}
    # msecs_to_jiffies(bfq_late_stable_merging) folds to 150 jiffies at HZ=250, hoisted
    s = site(catalog, "bfq_late_stable_merging", "bfq_setup_cooperator", 0xab)
    assert (s.location, s.expr, s.expected_default) == ("eax", "((V+3) >> 2)", 150)


def test_ilog2_divisor_is_a_pow2_log2_knob(catalog: Catalog) -> None:
    # nr_cpu_ids / RCU_JIFFIES_FQS_DIV (256): 'shr $8'
    knob = catalog.knob("RCU_JIFFIES_FQS_DIV")
    s = site(catalog, "RCU_JIFFIES_FQS_DIV", "adjust_jiffies_till_sched_qs", 0x3a)
    assert (s.location, s.expr, s.recompute_op, s.expected_default) == ("ebx", "log2(V)", "shr", 8)
    assert [c.kind for c in knob.domain.constraints] == ["pow2"] and knob.domain.max <= 1 << 31


def test_zero_default_is_the_xor_before_the_call(catalog: Catalog) -> None:
    # queue_delayed_work(..., SMC_TX_WORK_DELAY = 0): the delay argument is 'xor ecx, ecx'
    knob = catalog.knob("SMC_TX_WORK_DELAY")
    assert knob.default == 0
    for fn, off in (("smc_tx_sndbuf_nonempty", 0x2ae), ("smc_tx_consumer_update", 0x13c)):
        s = site(catalog, "SMC_TX_WORK_DELAY", fn, off)
        assert (s.module, s.location, s.synthesis, s.expr, s.expected_default) == \
            ("smc", "ecx", "register", "V", 0)


def test_unsupported_and_absent_have_reasons(catalog: Catalog) -> None:
    assert "memory address" in reason(catalog, "MAX_NR_FOLIOS_PER_FREE")
    names = {k.name for k in catalog.knobs} | {u.name for u in catalog.unsupported}
    assert "XFS_DISCARD_MAX_EXAMINE" not in names  # absent in 6.12: neither knob nor unsupported


def test_ring_size_leaving_its_function_keeps_pow2(catalog: Catalog) -> None:
    # alloc_pipe_info stores the ring size; pipe_write masks with ring_size - 1 elsewhere
    knob = catalog.knob("PIPE_MIN_DEF_BUFFERS")
    (c,) = knob.domain.constraints
    assert c.kind == "pow2" and "leaves alloc_pipe_info" in c.reason
    assert knob.domain.allowed_values() == [1, 2, 4, 8, 16]


def test_test_instruction_is_a_flags_site_of_an_and(catalog: Catalog) -> None:
    # get_next_ino's 'test eax, 0x3ff' (res & (LAST_INO_BATCH - 1)) sets AND flags, not cmp's
    flags = [s for s in catalog.knob("LAST_INO_BATCH").sites if s.synthesis == "flags"]
    assert [(s.function, s.flags_op, s.expr) for s in flags] == [("get_next_ino", "test", "V-1")]
    for s in catalog.knob("LAST_INO_BATCH").sites:  # a backward jump no longer inverts a span
        assert all(span.start < span.end for span in s.safe_spans)
