"""Catalog schema: domains and constraints refuse bad values before any write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotune.core.catalog import Catalog, Constraint, Domain, Knob, load_catalog
from autotune.core.errors import BadInputError
from autotune.core.kernel import KernelInfo, parse_build_id_notes

KERNEL = KernelInfo(release="6.12.0-test", build_id="ab" * 20, arch="x86_64")


def pipe_domain() -> Domain:
    return Domain(min=1, max=256, log=True,
                  constraints=[Constraint(kind="pow2", reason="ring size is an index mask")])


def test_pow2_domain_lists_only_powers_of_two() -> None:
    assert pipe_domain().allowed_values() == [1, 2, 4, 8, 16, 32, 64, 128, 256]


@pytest.mark.parametrize(("value", "fragment"), [(0, "outside"), (300, "outside"), (24, "pow2")])
def test_domain_check_names_the_problem(value: int, fragment: str) -> None:
    with pytest.raises(BadInputError, match=fragment):
        pipe_domain().check("PIPE_DEF_BUFFERS", value)


def test_multiple_of_constraint() -> None:
    d = Domain(min=0, max=64, constraints=[Constraint(kind="multiple_of", value=8, reason="x")])
    d.check("k", 16)
    with pytest.raises(BadInputError):
        d.check("k", 12)
    assert d.allowed_values() == [0, 8, 16, 24, 32, 40, 48, 56, 64]


def test_sie_knob_requires_sites() -> None:
    with pytest.raises(ValueError, match="no sites"):
        Knob(name="X", subsystem="mm", category="batch", domain=Domain(min=1, max=2), backend="sie")


def test_site_expression_is_parsed_on_load() -> None:
    site = {"function": "f", "cs_start": 0, "cs_end": 4, "probe_offset": 4, "location": "rax",
            "expr": "V +", "synthesis": "register", "expected_default": 16}
    knob = {"name": "X", "subsystem": "fs", "category": "size", "backend": "sie",
            "domain": {"min": 1, "max": 64}, "sites": [site]}
    with pytest.raises(BadInputError):
        Catalog.model_validate({"kernel": KERNEL.model_dump(), "knobs": [knob]})


def test_load_catalog_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "c.json"
    bad.write_text("{not json")
    with pytest.raises(BadInputError, match="not JSON"):
        load_catalog(bad)
    bad.write_text(json.dumps({"kernel": KERNEL.model_dump(), "knobs": [{"name": "x"}]}))
    with pytest.raises(BadInputError, match="knobs.0"):
        load_catalog(bad)
    with pytest.raises(BadInputError, match="cannot read"):
        load_catalog(tmp_path / "missing.json")


def test_build_id_note_parsing() -> None:
    desc = bytes(range(20))
    note = (4).to_bytes(4, "little") + (20).to_bytes(4, "little") + (3).to_bytes(4, "little")
    note += b"GNU\0" + desc
    other = (4).to_bytes(4, "little") + (4).to_bytes(4, "little") + (1).to_bytes(4, "little")
    other += b"Xen\0" + b"\0" * 4
    assert parse_build_id_notes(other + note) == desc.hex()
    assert parse_build_id_notes(other) is None
