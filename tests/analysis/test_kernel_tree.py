"""Where the oracle's prepared tree lives: never in a user's tree, one per config.

The trees here are toys whose Makefile records what kbuild's targets were asked to do;
the real ``make prepare`` on the lab's source runs in the lab catalog tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis import kernel_tree

TOY_MAKEFILE = """\
olddefconfig:
\techo olddefconfig >> log
prepare:
\tcp .config prepared-with
mrproper:
\trm -f .config prepared-with log
"""


def _toy(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "Makefile").write_text(TOY_MAKEFILE)
    (root / "kernel.c").write_text("int x;\n")
    return root


def _config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_users_tree_is_copied_and_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(tmp_path / "cache"))
    user = _toy(tmp_path / "linux")
    cloud = _config(tmp_path / "cloud.config", "CONFIG_HZ=250\n")
    prepared = kernel_tree.prepared_tree(user, cloud)
    assert prepared != user and prepared.is_relative_to(tmp_path / "cache" / "analysis")
    assert sorted(p.name for p in user.iterdir()) == ["Makefile", "kernel.c"]
    assert (prepared / "prepared-with").read_text() == "CONFIG_HZ=250\n"
    assert kernel_tree.prepared_tree(user, cloud) == prepared
    assert (prepared / "log").read_text() == "olddefconfig\n"  # prepared once


def test_our_tree_is_prepared_in_place_once_and_copied_for_another_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(tmp_path / "cache"))
    ours = _toy(kernel_tree.analysis_cache() / "6.12.1-1" / "src")
    cloud = _config(tmp_path / "cloud.config", "CONFIG_HZ=250\n# CONFIG_F2FS_FS is not set\n")
    generic = _config(tmp_path / "generic.config", "CONFIG_HZ=250\nCONFIG_F2FS_FS=m\n")
    assert kernel_tree.prepared_tree(ours, cloud) == ours
    other = kernel_tree.prepared_tree(ours, generic)
    assert other != ours and (other / "prepared-with").read_text().endswith("CONFIG_F2FS_FS=m\n")
    assert (ours / "prepared-with").read_text().endswith("is not set\n")
    assert kernel_tree.prepared_tree(ours, cloud) == ours
