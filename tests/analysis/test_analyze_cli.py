"""`autotune analyze` end to end on the shape corpus, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "autotune.cli", *args], capture_output=True,
                          text=True, env=env, check=False)


def test_analyze_corpus_writes_catalog_and_table(corpus_elf: Path, tmp_path: Path) -> None:
    import os

    (tmp_path / "config").write_text("CONFIG_HZ=250\n")
    out = tmp_path / "catalog.json"
    env = dict(os.environ, AUTOTUNE_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="200")
    res = _cli("analyze", "--kernel", str(corpus_elf), "--source", str(CORPUS), "--config",
               str(tmp_path / "config"), "--const", "LIMIT_LT", "--const", "TABLE_SIZE",
               "--jobs", "1", "-o", str(out), env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "LIMIT_LT" in res.stdout and "unsupported" in res.stdout
    doc = json.loads(out.read_text())
    assert [k["name"] for k in doc["knobs"]] == ["LIMIT_LT"]
    assert doc["knobs"][0]["sites"][0]["expr"] == "V-1"
    assert list((tmp_path / "cache" / "catalogs").glob("*.coverage.json"))


def test_bad_kernel_path_is_one_line_exit_2(tmp_path: Path) -> None:
    res = _cli("analyze", "--kernel", str(tmp_path / "nope"))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "no such file" in res.stderr


def test_vmlinux_without_source_is_refused(corpus_elf: Path) -> None:
    res = _cli("analyze", "--kernel", str(corpus_elf))
    assert res.returncode == 2 and "--source" in res.stderr
