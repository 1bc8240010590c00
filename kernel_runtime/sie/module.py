"""Build, load and drive the ``sie_write`` kernel module (kernel_runtime/sie/module/).

The module is the only thing that lets a BPF program change kernel state, and it only
writes at slots registered here for the sites of loaded knobs. Registration goes through
its root-only module parameter, so no BPF program can widen its own permissions.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from autotune.core.catalog import MemoryLocation, Site
from autotune.core.errors import EnvironmentProblem
from kernel_runtime.sie.registers import base_index, reg_index

NAME = "sie_write"
PARAMS = Path("/sys/module") / NAME / "parameters"
_SYS_FINIT_MODULE = 313  # x86-64


def source_dir() -> Path:
    return Path(str(resources.files("kernel_runtime.sie").joinpath("module")))


def source_digest() -> str:
    """Hash of the module's sources: a changed source never reuses an old build."""
    h = hashlib.sha256()
    for f in sorted(source_dir().iterdir()):
        if f.is_file():
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def build(headers: Path, out: Path) -> Path:
    """Compile the module against a kernel's headers tree (``/lib/modules/R/build`` or an extract).

    Cached under ``out/module-<source digest>/``.

    Debian's headers Makefile includes its ``-common`` sibling by absolute path; when the
    tree is an extract elsewhere, a copy of that one-line Makefile points at the extract.
    """
    out = out / f"module-{source_digest()}"
    ko = out / f"{NAME}.ko"
    if ko.exists():
        return ko
    if shutil.which("make") is None:
        raise EnvironmentProblem("make not found: apt-get install -y make gcc-12")
    with tempfile.TemporaryDirectory(prefix="sie-module-") as tmp:
        work = Path(tmp)
        kdir = _headers_view(headers, work / "kdir")
        src = work / "src"
        shutil.copytree(source_dir(), src)
        proc = subprocess.run(["make", "-C", str(kdir), f"M={src}", "modules"],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not (src / ko.name).exists():
            raise EnvironmentProblem(f"building {NAME}.ko against {headers} failed: "
                                     f"{(proc.stderr or proc.stdout).strip()[-1500:]} "
                                     "(apt-get install -y gcc-12 make dwarves)")
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / ko.name, ko.with_suffix(".tmp"))
        ko.with_suffix(".tmp").replace(ko)
    return ko


def _headers_view(headers: Path, view: Path) -> Path:
    """A directory that behaves like ``headers`` but includes the extracted -common tree."""
    first = (headers / "Makefile").read_text().split("\n", 1)[0]
    if not first.startswith("include /usr/src/"):
        return headers
    common = headers.parent / Path(first.split()[1]).parent.name
    if not common.exists() or common == Path(first.split()[1]).parent:
        return headers
    view.mkdir(parents=True)
    for entry in headers.iterdir():
        if entry.name != "Makefile":
            (view / entry.name).symlink_to(entry.resolve() if entry.is_symlink() else entry)
    (view / "Makefile").write_text(f"include {common}/Makefile\n")
    return view


def loaded() -> bool:
    return PARAMS.exists()


def load(ko: Path) -> None:
    """insmod through finit_module(2): no kmod binary needed in the guest."""
    if loaded():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(ko, os.O_RDONLY)
    try:
        if libc.syscall(_SYS_FINIT_MODULE, fd, b"", 0) != 0:
            err = ctypes.get_errno()
            raise EnvironmentProblem(f"cannot load {ko}: {os.strerror(err)} "
                                     "(root needed; a kernel with module signature enforcement "
                                     "or lockdown refuses unsigned modules)")
    finally:
        os.close(fd)


def _command(text: str) -> None:
    try:
        (PARAMS / "slots").write_text(text)
    except OSError as e:
        raise EnvironmentProblem(f"{NAME} refused {text!r}: {e.strerror}") from e


def slot_command(address: int, site: Site) -> str:
    """The registration line for a site probed at ``address``."""
    if isinstance(site.location, MemoryLocation):
        loc = site.location
        return f"add mem {address:x} {base_index(loc.base_reg)} {loc.disp} {loc.size}"
    if site.synthesis == "flags":
        return f"add flags {address:x}"
    assert isinstance(site.location, str)
    return f"add reg {address:x} {1 << reg_index(site.location):x}"


def slot_commands(address: int, site: Site) -> list[str]:
    """Every registration line of a site: a save-recompute 'sub' whose flags are read
    writes its register and the flags at one probe."""
    extra = [f"add flags {address:x}"] if site.recompute_flags else []
    return [slot_command(address, site), *extra]


def register(address: int, site: Site) -> None:
    for command in slot_commands(address, site):
        _command(command)


def unregister(address: int, site: Site) -> None:
    """Remove the slots registered for ``site`` (other knobs at the same probe keep theirs)."""
    if loaded():
        for command in slot_commands(address, site):
            _command("del" + command.removeprefix("add"))


def slots() -> list[str]:
    return [line for line in (PARAMS / "slots").read_text().splitlines() if line.strip()]


def counter(name: str) -> int:
    """``refused`` or ``written``: totals over every knob, kept by the module."""
    return int((PARAMS / name).read_text())
