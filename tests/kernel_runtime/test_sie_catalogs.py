"""Which SIE knobs load, from which catalog: the refusals, without a kernel that can do SIE.

The "target" here is a fake kernel identity (``FAKE_TARGET``) or this host, whose kernel has
no kprobes: every refusal below must happen before anything touches a kernel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autotune.core.catalog import Catalog, Knob
from autotune.core.errors import BadInputError, KernelMismatchError
from autotune.core.kernel import KernelInfo, running_kernel
from kernel_runtime.sie import SieBackend, artifacts
from kernel_runtime.sie.knobset import (
    ANALYSIS,
    GIVEN,
    HAND,
    UNVERIFIED_FLAG,
    CatalogChoice,
    default_analysis_catalog,
    load_knob_set,
)

LAB_RELEASE = "6.12.117+deb12-cloud-amd64"


def hand() -> Catalog:
    catalog = artifacts.bundled_catalog(LAB_RELEASE)
    assert catalog is not None
    return catalog


# A fake target: the lab release with the hand catalog's build-id, no kernel behind it.
FAKE_TARGET = hand().kernel
FAKE_OTHER_BUILD = FAKE_TARGET.model_copy(update={"build_id": "0123456789abcdef" * 2 + "01234567"})


def site(**kw: object) -> dict[str, object]:
    return {"function": "io_uring_setup", "cs_start": 0x80, "cs_end": 0x84, "probe_offset": 0x84,
            "location": "flags", "compare_operand": "ebx", "expr": "V", "synthesis": "flags",
            "expected_default": 32768,
            "verified": "oracle"} | kw


def analysis_knob(name: str, *sites: dict[str, object]) -> Knob:
    return Knob.model_validate({"name": name, "subsystem": "io_uring", "category": "threshold",
                                "default": 32768, "domain": {"min": 1, "max": 131072},
                                "backend": "sie", "sites": list(sites) or [site()]})


def analysis_catalog(path: Path, kernel: KernelInfo, *knobs: Knob) -> Path:
    path.write_text(Catalog(kernel=kernel, knobs=list(knobs)).model_dump_json())
    return path


def test_named_catalog_of_another_build_is_refused(tmp_path: Path) -> None:
    path = analysis_catalog(tmp_path / "other.json", FAKE_OTHER_BUILD, analysis_knob("IORING_MAX_ENTRIES"))
    with pytest.raises(KernelMismatchError, match=r"build 0123456789ab, the target runs .* build 7f76f39faf07") as e:
        load_knob_set(FAKE_TARGET, CatalogChoice(str(path)))
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


def test_cached_catalog_merges_under_the_hand_catalog(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(tmp_path))
    cached = default_analysis_catalog(FAKE_TARGET.build_id)
    cached.parent.mkdir(parents=True)
    analysis_catalog(cached, FAKE_TARGET, analysis_knob("IORING_MAX_ENTRIES"), analysis_knob("TCP_INIT_CWND"))
    found = load_knob_set(FAKE_TARGET, CatalogChoice())
    assert found.analysis_path == cached and found.analysis_origin == ANALYSIS
    assert [k.name for k in found.knobs()] == [k.name for k in hand().knobs] + ["IORING_MAX_ENTRIES"]
    assert found.origin("TCP_INIT_CWND") == HAND and found.origin("IORING_MAX_ENTRIES") == ANALYSIS
    assert found.shadowed() == ["TCP_INIT_CWND"]
    given = load_knob_set(FAKE_TARGET, CatalogChoice(str(cached)))
    assert given.origin("IORING_MAX_ENTRIES") == GIVEN


def test_a_stale_cached_catalog_is_left_out_with_a_note(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(tmp_path))
    cached = default_analysis_catalog(FAKE_TARGET.build_id)
    cached.parent.mkdir(parents=True)
    cached.write_text('{"version": 0}')
    found = load_knob_set(FAKE_TARGET, CatalogChoice())
    assert found.analysis is None and found.hand is not None
    assert len(found.notes) == 1 and str(cached) in found.notes[0]


def test_unverified_site_is_refused_unless_overridden() -> None:
    knob = analysis_knob("IORING_MAX_ENTRIES", site(), site(probe_offset=0x94, location="ebx",
                                                            synthesis="register", verified="none"))
    backend = SieBackend(catalog=hand(), extra=[knob])
    reason = backend.unavailable_reason(knob)
    assert reason is not None and "1 of 2 sites not oracle-verified: io_uring_setup+0x94 (none)" in reason
    assert UNVERIFIED_FLAG in reason
    with pytest.raises(BadInputError, match="not oracle-verified"):
        backend.load(knob)  # refused before the module or any probe is touched
    assert backend.known()[-1] == knob and not backend.status()
    assert SieBackend(catalog=hand(), allow_unverified=True).refusal(knob) is None


def test_hand_sites_are_trusted_and_stay_marked_unverified() -> None:
    backend = SieBackend(catalog=hand())
    for knob in hand().knobs:
        assert all(s.verified == "none" for s in knob.sites)  # no oracle ran on them
        assert backend.refusal(knob) is None
    edited = hand().knobs[0].model_copy(update={"name": "PIPE_EDITED"})
    assert backend.refusal(edited) is not None  # trust is by content, not by a name


def test_sites_in_modules_not_loaded_are_never_attached(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel_runtime.sie import runtime

    modules = tmp_path / "modules"
    modules.write_text("nf_conntrack 200704 0 - Live 0x0000000000000000\n")
    real = runtime.loaded_modules
    monkeypatch.setattr(runtime, "loaded_modules", lambda: real(modules))
    backend = SieBackend(catalog=hand())
    only_bfq = analysis_knob("BFQ_HW_QUEUE_THRESHOLD", site(function="bfq_finish_requeue_request",
                                                            module="bfq"))
    reason = backend.unavailable_reason(only_bfq)
    assert reason is not None and reason.startswith("module(s) bfq not loaded")
    with pytest.raises(Exception, match="module\\(s\\) bfq not loaded"):
        backend.load(only_bfq)
    mixed = analysis_knob("TCP_MAX_WSCALE", site(function="tcp_options", module="nf_conntrack"),
                          site(function="synproxy_parse_options", module="nf-synproxy-core"),
                          site(function="tcp_select_initial_window"))
    assert backend.skipped(mixed) == {1: "nf-synproxy-core"}
    assert backend.skipped_note(mixed) == "1 of 3 sites not attached: module(s) nf-synproxy-core not loaded"


def autotune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autotune.cli", *args], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=120)


@pytest.mark.parametrize("command", [
    ["knob", "set", "net.core.dev_weight", "128"],
    ["knob", "list"],
    ["revert"],
])
def test_cli_refuses_a_foreign_catalog_and_writes_nothing(tmp_path: Path, private_dirs: Path,
                                                         command: list[str]) -> None:
    host = running_kernel()
    foreign = host.model_copy(update={"build_id": "f" * 40})
    path = analysis_catalog(tmp_path / "foreign.json", foreign, analysis_knob("IORING_MAX_ENTRIES"))
    res = autotune(*command, "--catalog", str(path))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"catalog {path} is for" in lines[0] and "ffffffffffff" in lines[0]
    assert not list((private_dirs / "state").glob("journal*"))


def test_cli_refuses_an_unverified_knob(tmp_path: Path) -> None:
    path = analysis_catalog(tmp_path / "mine.json", FAKE_TARGET,
                            analysis_knob("IORING_MAX_ENTRIES", site(verified="emulation")))
    res = autotune("knob", "set", "IORING_MAX_ENTRIES", "4096", "--dry-run", "--release", LAB_RELEASE,
                   "--catalog", str(path))
    assert res.returncode == 2 and "not oracle-verified" in res.stderr, res.stderr
    ok = autotune("knob", "set", "IORING_MAX_ENTRIES", "4096", "--dry-run", "--release", LAB_RELEASE,
                  "--catalog", str(path), UNVERIFIED_FLAG)
    assert ok.returncode == 0, ok.stderr
    assert "kprobe io_uring_setup+0x84" in ok.stdout and "WARNING" in ok.stdout


def test_study_definitions_carry_the_catalog_to_every_worker(tmp_path: Path) -> None:
    from autotune.executors.factory import WorkerSpec
    from studies.definition import load_definition

    definition = tmp_path / "d.toml"
    definition.write_text('name = "n"\ncatalog = "/srv/catalogs/lab.json"\n'
                          "allow_unverified_sites = true\n")
    config = load_definition(definition).config("n-1")
    choice = WorkerSpec.from_config(config).catalog_choice()
    assert choice == CatalogChoice("/srv/catalogs/lab.json", allow_unverified=True)


class FakeCatalogTarget:
    """A fake target (knobs and usable() only): the hand catalog plus one analysis knob."""

    def __init__(self) -> None:
        from kernel_runtime.sie.knobset import KnobSet

        self.knob_set = KnobSet(kernel=FAKE_TARGET, hand=hand(), analysis=Catalog(
            kernel=FAKE_TARGET, knobs=[analysis_knob("IORING_MAX_ENTRIES")]))
        self.control = self

    def knobs(self) -> list[Knob]:
        return self.knob_set.knobs()

    def usable(self, knobs: list[Knob]) -> tuple[list[Knob], list[tuple[str, str]]]:
        return list(knobs), []


def test_without_selection_a_study_searches_analysis_knobs_only_by_name() -> None:
    from autotune.executors.factory import select_knobs

    target = FakeCatalogTarget()
    ok, left = select_knobs(target, ())  # type: ignore[arg-type]
    assert [k.name for k in ok] == [k.name for k in hand().knobs] + ["IORING_MAX_ENTRIES"]
    ok, left = select_knobs(target, (), counted=False)  # type: ignore[arg-type]
    assert [k.name for k in ok] == [k.name for k in hand().knobs]
    assert left == [("1 analysis-catalog knobs", "with --no-select searched only when named: "
                                                 "--knob NAME ('autotune knob list' shows them)")]
    ok, left = select_knobs(target, ("IORING_MAX_ENTRIES",))  # type: ignore[arg-type]
    assert [k.name for k in ok] == ["IORING_MAX_ENTRIES"] and left == []


def test_expression_named_knobs_get_a_safe_pin_directory() -> None:
    from kernel_runtime.sie.runtime import PIN_ROOT, pin_dir

    assert pin_dir("PIPE_DEF_BUFFERS") == PIN_ROOT / "PIPE_DEF_BUFFERS"
    odd = [pin_dir(n) for n in ("ca->delay_min >> 3", "ca->delay_min >> 4", "a/b",
                                "net/ipv4/tcp_input.c:921")]
    assert all(p.parent == PIN_ROOT and "/" not in p.name and ">" not in p.name for p in odd)
    assert "." not in odd[3].name  # bpffs refuses it (EPERM)
    assert len(set(odd)) == 4


def test_a_site_no_template_expresses_makes_the_knob_unusable() -> None:
    # oracle-verified, but its memory operand is text (an analysis older than memory operands)
    knob = analysis_knob("DEF_PRIORITY", site(function="balance_pgdat", probe_offset=0x217,
                                              compare_operand="byte ptr [rsp + 0xc4]"))
    reason = SieBackend(catalog=hand()).unavailable_reason(knob)
    assert reason is not None
    assert reason.startswith("site balance_pgdat+0x217 cannot be rendered: knob 'DEF_PRIORITY' "
                             "site balance_pgdat+0x217: operand 'byte ptr [rsp + 0xc4]' is memory")
