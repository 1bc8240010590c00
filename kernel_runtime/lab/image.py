"""Assemble the lab's initramfs from this host's own Debian binaries.

No second distribution and no pip inside the guest: busybox, python3.11 with its stdlib,
redis, bpftool and libbpf are copied from the host with the libraries ``ldd`` names;
the agent's own code and its few third-party imports (pydantic, pydantic_core, psutil:
compiled for CPython 3.11, the same ABI as Debian's python3.11) are copied from the
project and its virtualenv. Modules come decompressed from the extracted kernel package,
because busybox's insmod cannot read ``.ko.xz``.

The image is keyed by a digest of everything that goes in, so an edit to the agent's
source rebuilds it (in seconds) and an unchanged tree reuses it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import lzma
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from analysis.debian_kernel import KernelTree, KernelVersion, file_lock, version_dir
from autotune.core.errors import EnvironmentProblem

log = logging.getLogger(__name__)

GUEST_SITE = "/opt/autotune/site"
PROJECT_PACKAGES = ("autotune", "analysis", "kernel_runtime", "workloads")
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where the packages above live
# The agent's third-party imports; all wheels for CPython 3.11 on x86-64 glibc.
GUEST_PY_DEPS = ("pydantic", "pydantic_core", "annotated_types", "typing_extensions",
                 "typing_inspection", "psutil")
# host path -> Debian package that provides it (for the error message).
HOST_FILES = {
    "/bin/busybox": "busybox-static",
    "/usr/bin/python3.11": "python3.11-minimal",
    "/usr/bin/redis-server": "redis-server",
    "/usr/bin/redis-benchmark": "redis-tools",
    "/usr/sbin/bpftool": "bpftool",
    "/usr/lib/x86_64-linux-gnu/libbpf.so.1": "libbpf1",
}
STDLIB = Path("/usr/lib/python3.11")
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
               "config-3.11-x86_64-linux-gnu", "site-packages", "dist-packages", "venv"}
GUEST_MODULES = ("virtio_net",)
NO_BYTECODE = shutil.ignore_patterns("*.pyc", "__pycache__")  # recompiled for the guest below

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LabImage:
    """A bootable kernel + initramfs pair for one kernel version."""

    version: KernelVersion
    kernel: Path
    initrd: Path
    digest: str


def _digest_inputs(tree: KernelTree, payload: list[tuple[Path, str]]) -> str:
    h = hashlib.sha256(tree.version.package.encode())
    h.update(resources.files("kernel_runtime.lab").joinpath("init.sh").read_bytes())
    for pkg in PROJECT_PACKAGES:
        root = PROJECT_ROOT / pkg
        for f in sorted(root.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(root.parent)).encode() + f.read_bytes())
    for path in [Path(p) for p in HOST_FILES] + [_module_dir(m) for m in GUEST_PY_DEPS]:
        st = path.stat()
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    for src, dst in payload:  # by content: the SIE side may rewrite identical files
        h.update(dst.encode() + hashlib.sha256(src.read_bytes()).digest())
    return h.hexdigest()[:16]


def _module_dir(name: str) -> Path:
    """Directory of a package (or the file of a single-module dependency)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise EnvironmentProblem(f"python package {name!r} missing from the venv: "
                                 "run 'bash scripts/setup.sh'")
    origin = Path(spec.origin)
    return origin.parent if origin.name == "__init__.py" else origin


def sie_payload(vdir: Path) -> list[tuple[Path, str]]:
    """Files the SIE backend wants in the guest, if that part of the project exists yet."""
    try:
        sie = importlib.import_module("kernel_runtime.sie")
    except ImportError:
        log.info("kernel_runtime.sie not present: the lab image carries no SIE payload")
        return []
    fn = getattr(sie, "lab_payload", None)
    if fn is None:
        log.info("kernel_runtime.sie has no lab_payload(): the lab image carries no SIE payload")
        return []
    payload: list[tuple[Path, str]] = [(Path(src), str(dst)) for src, dst in fn(vdir)]
    return payload


def current_image(version: KernelVersion) -> LabImage | None:
    """The image last built for ``version``, if its files are still there."""
    manifest = version_dir(version) / "image.json"
    if not manifest.exists():
        return None
    data = json.loads(manifest.read_text())
    image = LabImage(version=version, kernel=Path(data["kernel"]), initrd=Path(data["initrd"]),
                     digest=data["digest"])
    return image if image.kernel.exists() and image.initrd.exists() else None


def build_image(version: KernelVersion, progress: Progress = lambda _: None) -> LabImage:
    """Return an up-to-date image for ``version``, assembling the initramfs when inputs changed."""
    tree = KernelTree.of(version)
    if not tree.vmlinuz.exists():
        raise EnvironmentProblem(f"{tree.vmlinuz} missing: run 'autotune lab build'")
    for path, package in HOST_FILES.items():
        if not Path(path).exists():
            raise EnvironmentProblem(f"{path} not found: apt-get install -y {package}")
    vdir = version_dir(version)
    with file_lock(vdir / ".image.lock"):
        payload = sie_payload(vdir)
        digest = _digest_inputs(tree, payload)
        old = current_image(version)
        if old is not None and old.digest == digest:
            return old
        initrd = vdir / "initramfs.cpio.zst"
        with tempfile.TemporaryDirectory(dir=vdir, prefix=".initramfs-") as tmp:
            stage = Path(tmp) / "root"
            _assemble(stage, tree, payload, progress)
            progress("packing the initramfs (cpio + zstd)")
            _pack(stage, initrd)
        image = LabImage(version=version, kernel=tree.vmlinuz, initrd=initrd, digest=digest)
        manifest = vdir / "image.json"
        manifest.with_suffix(".tmp").write_text(json.dumps(
            {"kernel": str(image.kernel), "initrd": str(initrd), "digest": digest}) + "\n")
        os.replace(manifest.with_suffix(".tmp"), manifest)
        return image


def _assemble(stage: Path, tree: KernelTree, payload: list[tuple[Path, str]],
              progress: Progress) -> None:
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "usr/lib/x86_64-linux-gnu", "usr/lib64",
              "etc/autotune", "proc", "sys", "dev", "tmp", "run", "root", "var", "boot"):
        (stage / d).mkdir(parents=True, exist_ok=True)
    (stage / "lib").symlink_to("usr/lib")
    (stage / "lib64").symlink_to("usr/lib64")
    init = stage / "init"
    init.write_bytes(resources.files("kernel_runtime.lab").joinpath("init.sh").read_bytes())
    init.chmod(0o755)
    progress("copying host binaries and their libraries")
    elves = []
    for path in HOST_FILES:
        elves.append(_copy(Path(path), stage, path))
    progress("copying python3.11's standard library")
    shutil.copytree(STDLIB, stage / STDLIB.relative_to("/"), symlinks=True,
                    ignore=lambda d, names: [n for n in names if n in STDLIB_SKIP
                                             or n.endswith((".opt-1.pyc", ".opt-2.pyc"))])
    elves += list((stage / STDLIB.relative_to("/") / "lib-dynload").glob("*.so"))
    site = stage / GUEST_SITE.lstrip("/")
    site.mkdir(parents=True)
    for name in PROJECT_PACKAGES:
        shutil.copytree(PROJECT_ROOT / name, site / name, ignore=NO_BYTECODE)
    for name in GUEST_PY_DEPS:
        src = _module_dir(name)
        if src.is_dir():
            shutil.copytree(src, site / src.name, ignore=NO_BYTECODE)
            elves += list((site / src.name).rglob("*.so"))
        else:
            shutil.copy2(src, site / src.name)
    for src, dst in payload:
        elves.append(_copy(src, stage, dst))
    progress("resolving shared libraries with ldd")
    for lib in sorted(_needed_libraries(elves)):
        _copy(lib, stage, lib.as_posix())
    progress("adding kernel modules and config")
    modules = _modules(tree, stage)
    (stage / "etc/autotune/modules").write_text("".join(f"{m}\n" for m in modules))
    shutil.copy2(tree.config, stage / "boot" / tree.config.name)
    (stage / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (stage / "etc/group").write_text("root:x:0:\n")
    (stage / "etc/hosts").write_text("127.0.0.1 localhost autotune-lab\n")
    progress("precompiling the agent's python")
    subprocess.run(["/usr/bin/python3.11", "-m", "compileall", "-q", "-j0", str(site)],
                   check=True, stdout=subprocess.DEVNULL)


def _guest_path(stage: Path, guest: str) -> Path:
    """Map a guest path into the stage, following the merged-/usr layout (/lib -> usr/lib)."""
    rel = guest.lstrip("/")
    for merged in ("lib/", "lib64/"):
        if rel.startswith(merged):
            rel = "usr/" + rel
    return stage / rel


def _copy(src: Path, stage: Path, guest: str) -> Path:
    dst = _guest_path(stage, guest)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src.resolve(), dst)
    return dst


def _needed_libraries(elves: list[Path]) -> set[Path]:
    """Every shared library (and the dynamic loader) that the given ELF files load."""
    libs: set[Path] = set()
    for elf in elves:
        if elf.read_bytes()[:4] != b"\x7fELF":
            continue
        res = subprocess.run(["ldd", str(elf)], capture_output=True, text=True, check=False)
        for line in res.stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
                libs.add(Path(parts[2]))
            elif parts and parts[0].startswith("/"):
                libs.add(Path(parts[0]))
    return libs


def module_depends(module: bytes) -> list[str]:
    """The ``depends=`` entry of a module's .modinfo strings (NUL-separated key=value)."""
    start = module.find(b"\0depends=")
    if start < 0:
        return []
    value = module[start + len(b"\0depends="):module.index(b"\0", start + 1)]
    return [d.replace("-", "_") for d in value.decode().split(",") if d]


def _modules(tree: KernelTree, stage: Path) -> list[str]:
    """Decompress GUEST_MODULES and their dependencies; return guest paths in load order."""
    index = {p.name.split(".ko")[0].replace("-", "_"): p for p in tree.modules.rglob("*.ko.xz")}
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name not in index:
            raise EnvironmentProblem(f"module {name} not in {tree.modules}: "
                                     "rerun 'autotune lab build' to re-extract the kernel")
        data = lzma.decompress(index[name].read_bytes())
        for dep in module_depends(data):
            visit(dep)
        rel = "/" + index[name].relative_to(tree.root).as_posix()[: -len(".xz")]
        dst = _guest_path(stage, rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
        order.append(name)
        guest_paths.append(rel)

    guest_paths: list[str] = []
    for name in GUEST_MODULES:
        visit(name)
    return guest_paths


def _pack(stage: Path, out: Path) -> None:
    names = subprocess.run(["find", ".", "-mindepth", "1"], cwd=stage, capture_output=True,
                           check=True).stdout.split(b"\n")
    listing = stage.parent / "files.txt"
    listing.write_bytes(b"\n".join(sorted(n for n in names if n)) + b"\n")
    tmp = out.with_suffix(".tmp")
    with open(listing, "rb") as src, open(tmp, "wb") as fh:
        cpio = subprocess.Popen(["cpio", "--quiet", "-o", "-H", "newc", "-R", "+0:+0"], cwd=stage,
                                stdin=src, stdout=subprocess.PIPE)
        assert cpio.stdout is not None
        zstd = subprocess.run(["zstd", "-q", "-T0", "-3", "-c"], stdin=cpio.stdout, stdout=fh,
                              check=False)
        cpio.stdout.close()
        cpio.wait()
    if cpio.returncode != 0 or zstd.returncode != 0:
        raise EnvironmentProblem("packing the initramfs failed: check 'cpio' and 'zstd' are "
                                 "installed (apt-get install -y cpio zstd)")
    os.replace(tmp, out)
