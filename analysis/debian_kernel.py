"""Debian bookworm's 6.12 cloud kernel, fetched as .deb files and extracted, never installed.

The lab VM boots this kernel, analysis reads its DWARF vmlinux and source, and the SIE
module builds against its headers: all three must agree on one exact build, so every
cache is keyed by the Debian package version resolved here. ``apt-get download`` plus
``dpkg-deb -x`` leaves the host's own kernel and package database untouched.

Layout under ``~/.cache/autotune/lab/<package-version>/``::

    VERSION.json               the resolved version (abi, package version, kernel release)
    root/                      every extracted package, as if installed at /
      boot/vmlinuz-<release>
      lib/modules/<release>/   modules (.ko.xz), modules.dep ...
      usr/lib/debug/boot/vmlinux-<release>     (role "dbg")
      usr/src/linux-headers-<release>/         (roles "headers", "headers-common")
      usr/lib/linux-kbuild-<abi>/              (role "kbuild")
      usr/src/linux-source-6.12.tar.xz         (role "source")
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from autotune.core.errors import BadInputError, EnvironmentProblem

SERIES = "6.12"
FLAVOUR = "cloud-amd64"
# role -> package name template; {abi} is e.g. "6.12.117+deb12".
ROLES: dict[str, str] = {
    "image": "linux-image-{abi}-" + FLAVOUR + "-unsigned",
    "dbg": "linux-image-{abi}-" + FLAVOUR + "-dbg",
    "headers": "linux-headers-{abi}-" + FLAVOUR,
    "headers-common": "linux-headers-{abi}-common",
    "kbuild": "linux-kbuild-{abi}",
    "source": "linux-source-" + SERIES,
}
LAB_ROLES = ("image", "headers", "headers-common", "kbuild")
APT_FIX = "run 'apt-get update' (as root) so apt knows bookworm-security's linux-6.12 packages"
_IMAGE_RE = re.compile(r"^linux-image-(" + re.escape(SERIES) + r"\.\d+\+deb12)-" + FLAVOUR
                       + r"-unsigned\s")


@dataclass(frozen=True)
class KernelVersion:
    """One Debian build of the 6.12 cloud kernel."""

    abi: str       # "6.12.117+deb12": part of every binary package name
    package: str   # "6.12.117-1~deb12u1": the Debian version, the cache key

    @property
    def release(self) -> str:
        """``uname -r`` of this kernel."""
        return f"{self.abi}-{FLAVOUR}"

    def package_name(self, role: str) -> str:
        try:
            return ROLES[role].format(abi=self.abi)
        except KeyError:
            raise BadInputError(f"unknown kernel package role {role!r}; "
                                f"choose from {', '.join(ROLES)}") from None


def cache_root(name: str) -> Path:
    """``<cache>/<name>``, for ``analysis`` (which cannot import ``kernel_runtime.paths``).

    Honours AUTOTUNE_CACHE_DIR exactly as ``kernel_runtime.paths.cache_dir`` does.
    """
    base = Path(os.environ.get("AUTOTUNE_CACHE_DIR") or "~/.cache/autotune").expanduser()
    path = base / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def lab_root() -> Path:
    return cache_root("lab")


def version_dir(version: KernelVersion) -> Path:
    return lab_root() / version.package


def _apt(*args: str) -> str:
    try:
        res = subprocess.run(["apt-cache", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise EnvironmentProblem("apt-cache not found: this needs a Debian machine") from None
    return res.stdout


def _dpkg_newer(a: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, "gt", b], check=False).returncode == 0


def available_versions() -> list[KernelVersion]:
    """Every 6.12 cloud build apt can download now, newest first."""
    listing = _apt("search", "--names-only", f"^linux-image-{SERIES}.*-{FLAVOUR}-unsigned$")
    abis = {m.group(1) for m in map(_IMAGE_RE.match, listing.splitlines()) if m}
    if not abis:
        return []
    names = {ROLES["image"].format(abi=abi): abi for abi in abis}
    found: list[KernelVersion] = []
    package = ""
    for line in _apt("show", *sorted(names)).splitlines():
        if line.startswith("Package: "):
            package = line.split(" ", 1)[1]
        elif line.startswith("Version: ") and package in names:
            found.append(KernelVersion(abi=names[package], package=line.split(" ", 1)[1]))
    ordered: list[KernelVersion] = []
    for v in found:
        i = 0
        while i < len(ordered) and not _dpkg_newer(v.package, ordered[i].package):
            i += 1
        if v not in ordered:
            ordered.insert(i, v)
    return ordered


def _record_path() -> Path:
    return lab_root() / "current.json"


def resolve_version(*, refresh: bool = False) -> KernelVersion:
    """The lab's kernel build: the recorded one, or (``refresh``/none recorded) apt's newest.

    Recording keeps lab, analysis and the SIE module on one build until ``lab build``
    deliberately moves to a newer one.
    """
    record = _record_path()
    if not refresh and record.exists():
        return KernelVersion(**json.loads(record.read_text()))
    versions = available_versions()
    if not versions:
        if record.exists():
            return KernelVersion(**json.loads(record.read_text()))
        raise EnvironmentProblem(
            f"apt lists no linux-image-{SERIES}.*-{FLAVOUR}-unsigned: {APT_FIX}")
    newest = versions[0]
    _atomic_write(record, json.dumps(asdict(newest)) + "\n")
    return newest


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive across processes (one downloader, one image builder per version)."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _download(package: str, version: str, into: Path) -> Path:
    res = subprocess.run(["apt-get", "download", "-q", f"{package}={version}"], cwd=into,
                         capture_output=True, text=True, check=False)
    debs = sorted(into.glob(f"{package}_*.deb"))
    if res.returncode != 0 or not debs:
        why = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise EnvironmentProblem(f"apt-get download {package}={version} failed ({why}): "
                                 f"{APT_FIX}, or 'autotune lab build' to move to the newest "
                                 "build apt still offers")
    return debs[0]


def fetch(packages: Sequence[str] = LAB_ROLES, *, version: KernelVersion | None = None) -> Path:
    """Download and extract the given roles (see ``ROLES``); return the version directory.

    Idempotent: a role extracted before is skipped (a marker is written only after a
    complete extraction, so an interrupted run redoes just that package).
    """
    version = version or resolve_version()
    vdir = version_dir(version)
    root = vdir / "root"
    root.mkdir(parents=True, exist_ok=True)
    names = [version.package_name(r) for r in packages]  # validates roles before any work
    with file_lock(vdir / ".fetch.lock"):
        _atomic_write(vdir / "VERSION.json",
                      json.dumps(asdict(version) | {"release": version.release}) + "\n")
        for name in names:
            marker = vdir / f".extracted-{name}"
            if marker.exists():
                continue
            with tempfile.TemporaryDirectory(dir=vdir, prefix=".dl-") as tmp:
                deb = _download(name, version.package, Path(tmp))
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
            marker.write_text(version.package + "\n")
    return vdir


def fetched(version: KernelVersion, role: str) -> bool:
    return (version_dir(version) / f".extracted-{version.package_name(role)}").exists()


@dataclass(frozen=True)
class KernelTree:
    """Paths into an extracted version directory."""

    version: KernelVersion
    root: Path

    @classmethod
    def of(cls, version: KernelVersion) -> KernelTree:
        return cls(version=version, root=version_dir(version) / "root")

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.version.release}"

    @property
    def config(self) -> Path:
        return self.root / "boot" / f"config-{self.version.release}"

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.version.release

    @property
    def vmlinux_dbg(self) -> Path:
        """The DWARF vmlinux (role ``dbg``)."""
        return self.root / "usr" / "lib" / "debug" / "boot" / f"vmlinux-{self.version.release}"

    @property
    def headers(self) -> Path:
        return self.root / "usr" / "src" / f"linux-headers-{self.version.release}"

    @property
    def source_tarball(self) -> Path:
        """``linux-source-6.12.tar.xz`` (role ``source``)."""
        return self.root / "usr" / "src" / f"linux-source-{SERIES}.tar.xz"

