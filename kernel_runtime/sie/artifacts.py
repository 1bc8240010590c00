"""Where the SIE backend finds its module and compiled BPF objects, and the lab catalog.

The lab image carries them precompiled under /opt/autotune/sie (the guest has no clang
and no kernel headers); a host with headers and clang builds them into the cache instead.
Objects for knobs the image does not know (an analysis catalog's) are compiled on the lab's
host and stored into the guest's cache (``store_objects``), searched after the image's.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from autotune.core.catalog import Catalog, load_catalog
from autotune.core.errors import BadInputError
from kernel_runtime.paths import cache_dir

GUEST_DIR = Path("/opt/autotune/sie")
RUNNING_BTF = Path("/sys/kernel/btf/vmlinux")


def search_dirs(release: str) -> list[Path]:
    """Directories holding prebuilt artefacts for ``release``, most specific first."""
    dirs = [Path(os.environ["AUTOTUNE_SIE_DIR"])] if os.environ.get("AUTOTUNE_SIE_DIR") else []
    return [*dirs, GUEST_DIR, build_dir(release)]


def build_dir(release: str) -> Path:
    return cache_dir() / "sie" / release


def find(release: str, relative: str) -> Path | None:
    for d in search_dirs(release):
        if (d / relative).exists():
            return d / relative
    return None


OBJECT_NAME = re.compile(r"^[0-9a-f]{20}\.o$")  # render.Rendered.object_name


def store_objects(release: str, objects: dict[str, bytes]) -> None:
    """Keep objects compiled elsewhere (a lab host) where ``find`` looks after the image."""
    bad = [n for n in objects if not OBJECT_NAME.match(n)]
    if bad:
        raise BadInputError(f"refusing BPF object names {bad[:3]}: expected <20 hex digits>.o")
    where = build_dir(release) / "bpf"
    where.mkdir(parents=True, exist_ok=True)
    for name, data in objects.items():
        tmp = where / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(where / name)


def bundled_catalog(release: str) -> Catalog | None:
    """The hand-written catalog shipped for ``release`` (kernel_runtime/sie/catalogs/)."""
    entry = resources.files("kernel_runtime.sie").joinpath("catalogs").joinpath(f"{release}.json")
    if not entry.is_file():
        return None
    return load_catalog(Path(str(entry)))


def catalog_for(release: str) -> Catalog | None:
    """The catalog the lab image carries (guest), else the bundled one."""
    shipped = find(release, "catalog.json")
    return load_catalog(shipped) if shipped else bundled_catalog(release)
