"""The QEMU command line of the lab VM, the per-boot initrd, and the KVM probe.

TCG (``-accel tcg,thread=single -cpu max``) is the default because this machine's
/dev/kvm (kvm-pvm) either aborts on a stock kernel or runs it ~50x slower than TCG. KVM
is used only when a quick probe (a bare kernel boot to its "no root" panic) shows it
really is fast; the verdict is cached for the host's current boot.

TCG runs single-threaded (the guest's vCPUs take turns on one host thread): with one
host thread per vCPU (``thread=multi``, QEMU 7.2) a vCPU sometimes executes code another
vCPU has already patched back, so the kernel's own text patching (kprobes, jump labels:
exactly what SIE and tracing do all day) ends in an ``int3`` oops. See docs/decisions.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from analysis.debian_kernel import lab_root
from kernel_runtime.agent.protocol import AGENT_PORT
from kernel_runtime.lab.image import LabImage

QEMU = "qemu-system-x86_64"
# panic=-1 reboots at once and -no-reboot turns that reboot into a QEMU exit, so a panic
# is seen by the host as the VM process ending; oops=panic makes an oops a panic too.
KERNEL_CMDLINE = "console=ttyS0 loglevel=4 panic=-1 oops=panic"
KVM_PROBE_SECONDS = 8.0


@dataclass(frozen=True)
class VmFiles:
    """Per-run files of one lab VM, all inside its run directory."""

    run_dir: Path

    @property
    def console(self) -> Path:
        return self.run_dir / "console.log"

    @property
    def shell(self) -> Path:
        return self.run_dir / "shell.sock"

    @property
    def initrd(self) -> Path:
        return self.run_dir / "initrd.img"

    @property
    def token(self) -> Path:
        return self.run_dir / "token"


def boot_initrd(image: LabImage, token: str, files: VmFiles) -> Path:
    """The image's initramfs plus a second archive holding this boot's token.

    The kernel unpacks concatenated archives in order; keeping the token out of the
    kernel command line keeps it out of ``ps`` on the host.
    """
    with tempfile.TemporaryDirectory() as tmp:
        token_file = Path(tmp) / "etc" / "autotune" / "token"
        token_file.parent.mkdir(parents=True)
        token_file.write_text(token + "\n")
        extra = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "+0:+0"], cwd=tmp,
                               input=b"etc/autotune/token\n", capture_output=True,
                               check=True).stdout
    base = image.initrd.read_bytes()
    pad = b"\0" * (-len(base) % 512)  # archives must start 4-byte aligned; zeros are skipped
    fd = os.open(files.initrd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base + pad + extra)
    return files.initrd


def qemu_argv(image: LabImage, files: VmFiles, *, port: int, cpus: int, memory_mb: int,
              kvm: bool) -> list[str]:
    accel = ["-accel", "kvm", "-cpu", "host"] if kvm else \
        ["-accel", "tcg,thread=single", "-cpu", "max"]
    return [
        QEMU, *accel, "-smp", str(cpus), "-m", str(memory_mb), "-display", "none",
        "-no-reboot", "-monitor", "none", "-nodefaults",
        "-kernel", str(image.kernel), "-initrd", str(files.initrd), "-append", KERNEL_CMDLINE,
        "-chardev", f"file,id=console,path={files.console}", "-serial", "chardev:console",
        "-device", "virtio-serial-pci",
        "-chardev", f"socket,id=shell,path={files.shell},server=on,wait=off",
        "-device", "virtconsole,chardev=shell",
        "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:{AGENT_PORT}",
        "-device", "virtio-net-pci,netdev=net0",
    ]


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def kvm_usable(image: LabImage) -> bool:
    """True only if KVM boots the lab kernel to its first panic within a few seconds."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    cache = lab_root() / "kvm-probe.json"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("boot_id") == _boot_id():
            return bool(cached["usable"])
    except (OSError, ValueError, KeyError):
        pass
    usable = _probe_kvm(image)
    cache.write_text(json.dumps({"boot_id": _boot_id(), "usable": usable}) + "\n")
    return usable


def _probe_kvm(image: LabImage) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "console.log"
        argv = [QEMU, "-accel", "kvm", "-cpu", "host", "-m", "512", "-display", "none",
                "-no-reboot", "-nodefaults", "-monitor", "none", "-kernel", str(image.kernel),
                "-append", "console=ttyS0 panic=-1", "-serial", f"file:{log}"]
        start = time.monotonic()
        try:
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=KVM_PROBE_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            return False
        fast = time.monotonic() - start < KVM_PROBE_SECONDS
        return fast and log.exists() and "Kernel panic" in log.read_text(errors="replace")
