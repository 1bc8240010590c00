"""``autotune lab``: build, start, stop, inspect and enter the lab VM."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

import click
from rich.console import Console

from autotune.core.errors import EnvironmentProblem

console = Console(stderr=True)
DETACH_KEY = b"\x1d"  # Ctrl-]
# What the lab, the SIE module build (headers, kbuild) and analysis (dbg) need.
BUILD_ROLES = ("image", "headers", "headers-common", "kbuild", "dbg")

EPILOG = """\b
Examples:
  autotune lab build                 # fetch Debian's newest 6.12 cloud kernel, build, test-boot
  autotune lab start                 # boot the shared lab; studies attach to it
  autotune lab status
  autotune lab shell                 # interactive root shell (Ctrl-] leaves)
  autotune lab shell -- sysctl net.core.somaxconn
  autotune lab logs -f               # the guest kernel's console
  autotune lab stop
"""


@contextlib.contextmanager
def _progress(title: str) -> Iterator[Callable[[str], None]]:
    with console.status(title) as status:
        yield lambda msg: status.update(f"{title}: {msg}")


@click.group(epilog=EPILOG)
def lab() -> None:
    """The lab VM: a real Debian 6.12 kernel under QEMU, for SIE where the host cannot."""


@lab.command(epilog=EPILOG)
@click.option("--keep-version", is_flag=True,
              help="Rebuild for the recorded kernel version instead of apt's newest.")
def build(keep_version: bool) -> None:
    """Download and extract the kernel packages, assemble the initramfs, test-boot it."""
    from analysis.debian_kernel import fetch, resolve_version
    from kernel_runtime.lab.image import build_image
    from kernel_runtime.lab.vm import Lab

    start = time.monotonic()
    with _progress("lab build") as say:
        say("resolving the newest 6.12 cloud kernel")
        version = resolve_version(refresh=not keep_version)
        for role in BUILD_ROLES:
            say(f"fetching {version.package_name(role)}")
            vdir = fetch([role], version=version)
        image = build_image(version, say)
        built = time.monotonic() - start
        vm = Lab.private()
        try:
            state = vm.start(image, progress=say)
            client = vm.client()
            info = client.connect()
            client.close()
        finally:
            vm.close()
    features = info["features"]
    if features["missing"]:
        raise EnvironmentProblem(f"the lab kernel booted but lacks SIE features: "
                                 f"{features['missing']}")
    click.echo(f"kernel   {version.release} (Debian {version.package})")
    click.echo(f"packages {', '.join(version.package_name(r) for r in BUILD_ROLES)}")
    click.echo(f"build-id {info['kernel']['build_id']}")
    click.echo(f"cache    {vdir}")
    click.echo(f"initrd   {image.initrd} ({image.initrd.stat().st_size / 1e6:.1f} MB)")
    click.echo(f"built in {built:.1f} s; test boot ({state.accel}) to agent hello in "
               f"{state.boot_seconds:.1f} s; kprobes, modules, BTF, kprobe kfuncs: present")


@lab.command(epilog=EPILOG)
def start() -> None:
    """Boot the shared lab VM in the background (studies and 'lab shell' attach to it)."""
    from analysis.debian_kernel import LAB_ROLES, fetch, resolve_version
    from kernel_runtime.lab.image import build_image
    from kernel_runtime.lab.vm import Lab

    vm = Lab.default()
    running = vm.state()
    if running is not None:
        click.echo(f"lab already running (pid {running.pid}); 'autotune lab stop' first")
        return
    with _progress("lab start") as say:
        version = resolve_version()
        fetch(LAB_ROLES, version=version)
        state = vm.start(build_image(version, say), progress=say)
    click.echo(f"lab running: {state.release} ({state.accel}), pid {state.pid}, agent on "
               f"127.0.0.1:{state.port}, booted in {state.boot_seconds:.1f} s")


@lab.command(epilog=EPILOG)
def stop() -> None:
    """Power the shared lab VM off (its state is discarded)."""
    from kernel_runtime.lab.vm import Lab

    vm = Lab.default()
    if vm.state() is None:
        click.echo("lab not running")
        return
    vm.stop()
    click.echo("lab stopped")


@lab.command(epilog=EPILOG)
def status() -> None:
    """Is the shared lab running, on which kernel, and how healthy is it."""
    from kernel_runtime.lab.vm import Lab

    vm = Lab.default()
    st = vm.state()
    if st is None:
        click.echo("lab not running ('autotune lab start' boots it)")
        return
    client = vm.client()
    client.connect()
    try:
        health = client.call("health", wait=10)
    finally:
        client.close()
    click.echo(f"running   pid {st.pid}, {st.accel}, agent 127.0.0.1:{st.port}")
    click.echo(f"kernel    {st.release} (Debian {st.version})")
    click.echo(f"uptime    {health['uptime']:.0f} s (booted in {st.boot_seconds:.1f} s)")
    click.echo(f"load      {' '.join(f'{x:.2f}' for x in health['loadavg'])}")
    click.echo(f"tainted   {health['tainted']}  sessions {health['sessions']}  "
               f"lease lapses {len(health['lease_lapses'])}")


@lab.command(epilog=EPILOG)
@click.argument("command", nargs=-1)
def shell(command: tuple[str, ...]) -> None:
    """A root shell in the shared lab; with COMMAND, run it there and print its output."""
    from kernel_runtime.lab.vm import Lab

    vm = Lab.default()
    if vm.state() is None:
        raise EnvironmentProblem("lab not running: run 'autotune lab start' first")
    if command:
        client = vm.client()
        client.connect()
        try:
            res = client.call("run", wait=330, argv=list(command), timeout=300)
        finally:
            client.close()
        click.echo(res["stdout"], nl=False)
        click.echo(res["stderr"], nl=False, err=True)
        sys.exit(res["returncode"])
    _interactive(vm.files.shell)


def _interactive(path: Path) -> None:
    """Bridge this terminal to the guest's virtio console until Ctrl-]."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    click.echo("connected to the lab shell; Ctrl-] leaves", err=True)
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    try:
        if saved is not None:
            tty.setraw(fd)
        sock.sendall(b"\n")
        while True:
            ready, _, _ = select.select([fd, sock], [], [])
            if sock in ready:
                data = sock.recv(4096)
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if fd in ready:
                data = os.read(fd, 1024)
                if not data or DETACH_KEY in data:
                    break
                sock.sendall(data)
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        sock.close()


@lab.command(epilog=EPILOG)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--previous", is_flag=True, help="The console of the boot before (after a crash).")
def logs(follow: bool, previous: bool) -> None:
    """The guest kernel's console log (panics, oopses and warnings land here)."""
    from kernel_runtime.lab.vm import Lab

    vm = Lab.default()
    path = vm.run_dir / "console.prev.log" if previous else vm.files.console
    if not path.exists():
        raise EnvironmentProblem(f"no console log at {path}: the lab has not run yet")
    with open(path, errors="replace") as fh:
        click.echo(fh.read(), nl=False)
        while follow:
            line = fh.readline()
            if line:
                click.echo(line, nl=False)
            else:
                time.sleep(0.2)
