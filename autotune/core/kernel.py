"""Facts that identify a kernel build: release, build-id, arch, CONFIG_HZ.

The build-id is the contract that ties catalogs and policies to one binary: offsets and
expressions are only meaningful for the exact build they were derived from.
"""

from __future__ import annotations

import gzip
import platform
import struct
from pathlib import Path

from pydantic import BaseModel, ConfigDict

NT_GNU_BUILD_ID = 3


class KernelInfo(BaseModel):
    """Identity of a running or analysed kernel build."""

    model_config = ConfigDict(extra="forbid")

    release: str
    build_id: str
    arch: str
    config_hz: int | None = None
    source_version: str | None = None


def parse_build_id_notes(data: bytes) -> str | None:
    """Find the GNU build-id in a raw ELF note section (as in /sys/kernel/notes)."""
    off = 0
    while off + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, off)
        off += 12
        name = data[off : off + namesz]
        off += (namesz + 3) & ~3
        desc = data[off : off + descsz]
        off += (descsz + 3) & ~3
        if ntype == NT_GNU_BUILD_ID and name.rstrip(b"\0") == b"GNU":
            return desc.hex()
    return None


def read_config_hz(release: str) -> int | None:
    """CONFIG_HZ from /proc/config.gz or /boot/config-RELEASE, when either exists."""
    candidates = [Path("/proc/config.gz"), Path(f"/boot/config-{release}")]
    for path in candidates:
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        text = gzip.decompress(raw).decode() if path.suffix == ".gz" else raw.decode()
        for line in text.splitlines():
            if line.startswith("CONFIG_HZ="):
                return int(line.split("=", 1)[1])
    return None


def running_kernel(notes_path: Path = Path("/sys/kernel/notes")) -> KernelInfo:
    """Identify the kernel this process runs on."""
    release = platform.release()
    try:
        build_id = parse_build_id_notes(notes_path.read_bytes()) or "unknown"
    except OSError:
        build_id = "unknown"
    return KernelInfo(
        release=release,
        build_id=build_id,
        arch=platform.machine(),
        config_hz=read_config_hz(release),
    )
