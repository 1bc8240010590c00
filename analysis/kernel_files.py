"""Which kernel build to analyse: the lab's, the host's, or a vmlinux the user names.

Gathers what analysis needs from one build (the DWARF vmlinux, the source tree, the config
and the module debug files) and its identity (KernelInfo) in one place.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

from autotune.core.errors import BadInputError, EnvironmentProblem
from autotune.core.kernel import KernelInfo


@dataclass(frozen=True)
class KernelFiles:
    vmlinux: Path
    source: Path
    config: Path
    modules_debug: Path | None
    release: str
    package: str

    def config_value(self, name: str) -> str | None:
        try:
            for line in self.config.read_text().splitlines():
                if line.startswith(name + "="):
                    return line.split("=", 1)[1]
        except OSError:
            return None
        return None

    @property
    def hz(self) -> int:
        value = self.config_value("CONFIG_HZ")
        if value is None:
            raise EnvironmentProblem(f"{self.config}: no CONFIG_HZ; pass the build's .config")
        return int(value)

    def info(self, build_id: str) -> KernelInfo:
        return KernelInfo(release=self.release, build_id=build_id, arch="x86_64",
                          config_hz=self.hz, source_version=self.package)


def lab_kernel() -> KernelFiles:
    """The lab's Debian 6.12 cloud build: fetched (cached) with its -dbg and source packages."""
    from analysis import debian_kernel, kernel_tree

    version = debian_kernel.resolve_version()
    debian_kernel.fetch(["image", "dbg", "source"], version=version)
    tree = debian_kernel.KernelTree.of(version)
    src = kernel_tree.source_tree(tree.source_tarball, version.package)
    mods = tree.root / "usr" / "lib" / "debug" / "lib" / "modules" / version.release
    return KernelFiles(tree.vmlinux_dbg, src, tree.config, mods if mods.is_dir() else None,
                       version.release, version.package)


def host_kernel(source: Path | None) -> KernelFiles:
    """The running kernel, when its -dbg vmlinux is installed (Debian's linux-image-*-dbg)."""
    release = platform.release()
    vmlinux = Path(f"/usr/lib/debug/boot/vmlinux-{release}")
    if not vmlinux.exists():
        raise EnvironmentProblem(f"{vmlinux} missing: install linux-image-{release}-dbg, "
                                 "or analyse the lab kernel with --kernel lab")
    return path_kernel(vmlinux, source, Path(f"/boot/config-{release}"), release)


def path_kernel(vmlinux: Path, source: Path | None, config: Path | None,
                release: str = "") -> KernelFiles:
    """A user-named vmlinux; its source tree and config must be given too."""
    if not vmlinux.is_file():
        raise BadInputError(f"--kernel {vmlinux}: no such file; pass a vmlinux with DWARF, "
                            "'lab' or 'host'")
    if source is None or not source.is_dir():
        raise BadInputError(f"--kernel {vmlinux}: pass its source tree with --source DIR "
                            "(the directory the build's DWARF paths are relative to)")
    cfg = config or source / ".config"
    if not cfg.exists():
        raise BadInputError(f"--kernel {vmlinux}: no config at {cfg}; pass --config FILE")
    release = release or vmlinux.name.removeprefix("vmlinux-")
    return KernelFiles(vmlinux, source, cfg, _modules_debug(vmlinux, release), release, "")


def _modules_debug(vmlinux: Path, release: str) -> Path | None:
    """The module debug files beside a Debian ``-dbg`` vmlinux, if they are there.

    Debian's ``-dbg`` package puts the vmlinux at ``usr/lib/debug/boot/vmlinux-R`` and the
    modules' debug files at ``usr/lib/debug/lib/modules/R``, installed (``--kernel host``)
    or extracted anywhere; without them a constant compiled only into modules (NFS, btrfs,
    f2fs ...) would be reported as not built.
    """
    if vmlinux.parent.name != "boot":
        return None
    mods = vmlinux.parent.parent / "lib" / "modules" / release
    return mods if mods.is_dir() else None
