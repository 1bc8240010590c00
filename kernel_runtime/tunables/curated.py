"""The curated set of existing tunables, read from the bundled ``curated.toml``."""

from __future__ import annotations

import tomllib
from importlib import resources

from autotune.core.catalog import Knob


def curated_knobs() -> list[Knob]:
    """Every curated sysctl/debugfs knob; callers filter by what the target can write."""
    text = resources.files("kernel_runtime.tunables").joinpath("curated.toml").read_text()
    return [Knob.model_validate(k) for k in tomllib.loads(text)["knob"]]
