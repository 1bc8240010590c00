"""The lab's kernel packages: resolved from apt, extracted once, laid out as installed."""

from __future__ import annotations

import json

import pytest

from analysis.debian_kernel import (
    LAB_ROLES,
    KernelTree,
    available_versions,
    fetch,
    fetched,
    resolve_version,
    version_dir,
)
from autotune.core.errors import BadInputError
from kernel_runtime.lab.image import module_depends

pytestmark = pytest.mark.lab


def test_recorded_version_is_a_6_12_cloud_build_apt_offers() -> None:
    version = resolve_version()
    assert version.release.startswith("6.12.") and version.release.endswith("-cloud-amd64")
    assert version in available_versions()


def test_fetch_is_idempotent_and_lays_out_an_installed_tree() -> None:
    version = resolve_version()
    vdir = fetch(LAB_ROLES, version=version)
    stamps = {role: (vdir / f".extracted-{version.package_name(role)}").stat().st_mtime_ns
              for role in LAB_ROLES}
    assert fetch(LAB_ROLES, version=version) == vdir == version_dir(version)
    assert all(fetched(version, role) for role in LAB_ROLES)
    assert stamps == {role: (vdir / f".extracted-{version.package_name(role)}").stat()
                      .st_mtime_ns for role in LAB_ROLES}  # nothing downloaded twice
    tree = KernelTree.of(version)
    assert tree.vmlinuz.stat().st_size > 5_000_000
    assert "CONFIG_KPROBES=y" in tree.config.read_text()
    assert (tree.headers / "Module.symvers").exists()
    assert list(tree.modules.rglob("virtio_net.ko.xz"))
    assert json.loads((vdir / "VERSION.json").read_text())["release"] == version.release


def test_module_dependencies_come_from_modinfo() -> None:
    import lzma

    tree = KernelTree.of(resolve_version())
    virtio_net = next(tree.modules.rglob("virtio_net.ko.xz"))
    assert module_depends(lzma.decompress(virtio_net.read_bytes())) == ["net_failover"]


def test_unknown_role_is_refused() -> None:
    with pytest.raises(BadInputError, match="unknown kernel package role 'firmware'"):
        fetch(["firmware"])
