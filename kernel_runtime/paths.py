"""Where the product keeps state on a machine (journal, studies, caches).

Overridable by environment so tests and the lab agent get private directories.
"""

from __future__ import annotations

import os
from pathlib import Path


def _dir(env: str, default: Path) -> Path:
    path = Path(os.environ.get(env) or default).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def state_dir() -> Path:
    """Journal and lease files: must survive a crash of the controller."""
    return _dir("AUTOTUNE_STATE_DIR", Path("~/.local/state/autotune"))


def data_dir() -> Path:
    """Study database and exported artefacts."""
    return _dir("AUTOTUNE_DATA_DIR", Path("~/.local/share/autotune"))


def cache_dir() -> Path:
    """Downloads and builds that can be recreated (lab image, catalogs, BPF objects)."""
    return _dir("AUTOTUNE_CACHE_DIR", Path("~/.cache/autotune"))
