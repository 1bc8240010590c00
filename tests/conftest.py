"""Shared fixtures: every test gets private state, data and journal directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep journals and study databases of tests away from the user's real ones."""
    base = tmp_path_factory.mktemp("autotune")
    monkeypatch.setenv("AUTOTUNE_STATE_DIR", str(base / "state"))
    monkeypatch.setenv("AUTOTUNE_DATA_DIR", str(base / "data"))
    if "AUTOTUNE_CACHE_DIR" not in os.environ:
        monkeypatch.setenv("AUTOTUNE_CACHE_DIR", str(Path("~/.cache/autotune").expanduser()))
    return base
