"""The recompile oracle on the real lab kernel: confirm, refute, and find what matching missed.

Each constant here lives in one small object, so the three compiles per object take seconds.
"""

from __future__ import annotations

import dataclasses

import pytest

from analysis import analyze, find_sites, kernel_tree, linetable, oracle, seeds
from analysis.elfimage import Image
from autotune.core.catalog import Catalog

NAMES = ["MAX_SOFTIRQ_RESTART", "SBQ_WAKE_BATCH", "EP_MAX_NESTS"]


@pytest.fixture(scope="module")
def catalog(lab_files) -> Catalog:  # type: ignore[no-untyped-def]
    return analyze.analyze(lab_files, names=NAMES, oracle=True, jobs=2, force=True).catalog


def test_every_kept_site_is_oracle_verified(catalog: Catalog) -> None:
    assert {k.name for k in catalog.knobs} >= {"MAX_SOFTIRQ_RESTART", "EP_MAX_NESTS"}
    for knob in catalog.knobs:
        assert knob.sites and all(s.verified == "oracle" for s in knob.sites), knob.name
    # verified, but in lib/ (built without ftrace): no kprobe can attach, so no knob
    (unsup,) = [u for u in catalog.unsupported if u.name == "SBQ_WAKE_BATCH"]
    assert "notrace functions" in unsup.reason


def test_oracle_confirms_hoisted_softirq_restart(catalog: Catalog) -> None:
    (s,) = catalog.knob("MAX_SOFTIRQ_RESTART").sites
    assert (s.function, s.cs_start, s.expr) == ("handle_softirqs", 0x54, "V")


def test_oracle_promotes_derived_compare(lab_files) -> None:  # type: ignore[no-untyped-def]
    # sbitmap compares against SBQ_WAIT_QUEUES * SBQ_WAKE_BATCH - 1: no encoding rule
    # guesses 8V-1, the three builds fit it exactly.
    image, found = _found(lab_files, "SBQ_WAKE_BATCH")
    oracle.verify_seed(lab_files, {"": image}, found, jobs=2)
    derived = [r.site for r in found.results if r.site is not None and r.site.expr == "V*8-1"]
    assert len(derived) >= 3 and all(s.location == "flags" for s in derived)
    assert all(s.expected_default == 63 and s.verified == "oracle" for s in derived)


def _found(lab_files, name: str):  # type: ignore[no-untyped-def]
    image = Image(lab_files.vmlinux)
    table = linetable.line_table(lab_files.vmlinux, kernel_tree.analysis_cache() / image.build_id)
    seed = seeds.resolve(name, "", lab_files.source, 250)
    seeds.find_uses([seed], lab_files.source)
    return image, find_sites.find([seed], [(image, table)], {seed.name: 1}, jobs=1)[seed.name]


def test_wrong_expression_is_refuted_and_dropped(lab_files) -> None:  # type: ignore[no-untyped-def]
    image, found = _found(lab_files, "MAX_SOFTIRQ_RESTART")
    (res,) = [r for r in found.results if r.site is not None]
    # same immediate at V0 (2*10-10 = 10), different at every other value
    res.candidate = dataclasses.replace(res.candidate, expr="V*2-10")
    report = oracle.verify_seed(lab_files, {"": image}, found, jobs=2)
    assert report.refuted == ["handle_softirqs+0x54"] and res.site is None
    assert "refuted by the oracle" in res.reason
    promoted = [r.site for r in found.results if r is not res and r.site is not None]
    assert [(s.cs_start, s.expr, s.verified) for s in promoted] == [(0x54, "V", "oracle")]


def test_same_immediate_twice_in_one_function(lab_files) -> None:  # type: ignore[no-untyped-def]
    # alloc_pipe_info loads 16 twice (+0x77 eax for accounting, +0x7c ebp for the ring):
    # each site must be confirmed by its own instruction, and V also sizes on-stack arrays
    # in the trace splice code, which no site can cover.
    image, found = _found(lab_files, "PIPE_DEF_BUFFERS")
    report = oracle.verify_seed(lab_files, {"": image}, found, jobs=2)
    sites = sorted((s.cs_start, s.location, s.expr) for r in found.results
                   if (s := r.site) is not None and s.function == "alloc_pipe_info")
    assert sites == [(0x6b, "flags", "V*4096-1"), (0x77, "eax", "V"), (0x7c, "ebp", "V")]
    assert any("stack frame" in u for u in report.uncovered)


@pytest.fixture(scope="module")
def shaped(lab_files) -> analyze.Result:  # type: ignore[no-untyped-def]
    """Constants whose first oracle values make GCC reshape code (select.o, tcp_dctcp.o)."""
    names = ["MAX_SLACK", "TCP_PLB_SCALE"]
    return analyze.analyze(lab_files, names=names, oracle=True, jobs=2, force=True)


def test_divided_constant_found_and_held_out(shaped: analyze.Result) -> None:
    # MAX_SLACK / (NSEC_PER_SEC / divfactor): V/1000000 and V/5000000 in registers. At
    # V=2*V0+1 the quotient 200 merges with the literal 200 beside it, so the oracle moves to
    # its next pair; three points fit V/4980736 too, the held-out builds keep only 5000000.
    knob = shaped.catalog.knob("MAX_SLACK")
    assert {(s.expr, s.verified) for s in knob.sites} == {
        ("V", "oracle"), ("V/1000000", "oracle"), ("V/5000000", "oracle")}
    assert len(knob.sites) == 4


def test_use_without_a_site_is_recompiled_too(shaped: analyze.Result) -> None:
    # TCP_PLB_SCALE: dctcp's 'shl $V' is verified at 9 and 16 (not 32: 'x << 32' is undefined
    # and GCC drops the shift), and tcp_sk_init, which holds a use but no site, is recompiled
    # as well: its movabs of (1 << V) / 2 merged with another sysctl's constant becomes two
    # sites there (analysis/halves.py), and C's int shift bounds V to 30
    knob = shaped.catalog.knob("TCP_PLB_SCALE")
    merged = [(s.expr, s.location, s.verified) for s in knob.sites if s.function == "tcp_sk_init"]
    assert merged == [("(u32((1 << V)/2) << 32) | 1007420160", "rax", "oracle")] * 2
    assert (knob.domain.min, knob.domain.max) == (0, 30)
