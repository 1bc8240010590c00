"""``autotune knob``: list, load, set, reset, unload and inspect single knobs on this kernel.

Writes go through the journaled controller as a ``policy`` session, so a value set here
stays until ``knob reset`` or ``autotune revert``. SIE needs a kernel with kprobes and
modules; elsewhere ``--dry-run`` still shows what would be loaded.
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING, Any, cast

import click
from rich.console import Console
from rich.table import Table

from autotune.core.catalog import Knob
from autotune.core.errors import BadInputError, EnvironmentProblem

if TYPE_CHECKING:
    from kernel_runtime.sie import SieBackend
    from kernel_runtime.sie.runtime import Mode

console = Console()

EPILOG = """\b
Examples:
  autotune knob list
  autotune knob load PIPE_DEF_BUFFERS --mode per-task
  autotune knob set PIPE_DEF_BUFFERS 64
  autotune knob set TCP_INIT_CWND 32 --cgroup /sys/fs/cgroup/web
  autotune knob set SHRINK_BATCH 32 --pid 4242
  autotune knob status
  autotune knob reset PIPE_DEF_BUFFERS
  autotune knob unload
  autotune knob load PIPE_DEF_BUFFERS --dry-run --release 6.12.117+deb12-cloud-amd64
"""


def _catalog_knobs(release: str | None) -> dict[str, Knob]:
    from kernel_runtime.sie.artifacts import catalog_for
    from kernel_runtime.tunables import curated_knobs

    knobs = {k.name: k for k in curated_knobs()}
    catalog = catalog_for(release or platform.release())
    if catalog is not None:
        knobs.update({k.name: k for k in catalog.knobs})
    return knobs


def _knob(name: str, release: str | None) -> Knob:
    knobs = _catalog_knobs(release)
    if name not in knobs:
        raise BadInputError(f"unknown knob {name!r}; 'autotune knob list' shows the known ones")
    return knobs[name]


def _sie_backend(mode: Mode = "immediate") -> SieBackend:
    from kernel_runtime.sie import SieBackend

    backend = SieBackend.for_running_kernel()
    if isinstance(backend, str):
        raise EnvironmentProblem(f"SIE unavailable here: {backend}; tune SIE knobs in the lab "
                                 "('autotune run --target lab') or inspect with --dry-run")
    backend.mode = mode
    return backend


def _scope(cgroup: str | None, pid: int | None) -> Any:
    from kernel_runtime.backend import GLOBAL, Scope

    if cgroup and pid:
        raise BadInputError("give --cgroup or --pid, not both")
    if cgroup:
        try:
            return Scope("cgroup", os.stat(cgroup).st_ino)  # cgroup v2: the id is the inode
        except OSError as e:
            raise BadInputError(f"--cgroup {cgroup}: {e.strerror}; give a cgroup v2 directory") from e
    return Scope("pid", pid) if pid else GLOBAL


release_option = click.option("--release", default=None,
                              help="Use the bundled catalog of this kernel release (default: running).")
dry_run_option = click.option("--dry-run", is_flag=True,
                              help="Print the BPF C and the module calls; change nothing.")


@click.group(epilog=EPILOG)
def knob() -> None:
    """Single knobs on this kernel: SIE perf-consts and curated sysctl/debugfs tunables."""


@knob.command("list", epilog=EPILOG)
@release_option
def list_(release: str | None) -> None:
    """Every known knob, its default and domain, and whether it works here."""
    from kernel_runtime.host import local_controller
    from kernel_runtime.sie import SieBackend

    knobs = list(_catalog_knobs(release).values())
    controller = local_controller()
    ok, left = controller.usable(knobs)
    reasons = dict(left)
    if "sie" not in controller.backends:
        why = SieBackend.for_running_kernel()
        reasons.update({k.name: f"no SIE here: {why}" for k in knobs if k.backend == "sie"})
    table = Table("knob", "backend", "default", "domain", "usable here")
    for k in knobs:
        dom = f"[{k.domain.min}, {k.domain.max}]" + "".join(f" {c.describe()}" for c in k.domain.constraints)
        table.add_row(k.name, k.backend, str(k.default), dom, reasons.get(k.name, "yes"))
    console.print(table)


@knob.command(epilog=EPILOG)
@click.argument("name")
@click.option("--mode", type=click.Choice(["immediate", "per-task"]), default="immediate",
              help="When a new value reaches a task (per-task: on entering a safe span).")
@release_option
@dry_run_option
def load(name: str, mode: str, release: str | None, dry_run: bool) -> None:
    """Attach a knob's probes; the kernel's own value applies until 'knob set'."""
    k = _knob(name, release)
    if k.backend != "sie":
        raise BadInputError(f"knob {name!r} is a {k.backend} tunable: nothing to load, use 'knob set'")
    if dry_run:
        from kernel_runtime.sie.plan import load_plan

        click.echo(load_plan(k, cast("Mode", mode)))
        return
    _sie_backend(cast("Mode", mode)).load(k)
    console.print(f"{name}: loaded ({mode}); the kernel's own value applies until 'knob set'")


@knob.command("set", epilog=EPILOG)
@click.argument("name")
@click.argument("value", type=int)
@click.option("--cgroup", default=None, help="Only tasks in this cgroup v2 directory.")
@click.option("--pid", type=int, default=None, help="Only this process.")
@release_option
@dry_run_option
def set_(name: str, value: int, cgroup: str | None, pid: int | None, release: str | None,
         dry_run: bool) -> None:
    """Make VALUE live (domain-checked, journaled; kept until reset or 'autotune revert')."""
    k = _knob(name, release)
    k.domain.check(name, value)
    scope = _scope(cgroup, pid)
    if dry_run:
        from kernel_runtime.sie.plan import load_plan, set_plan

        click.echo(set_plan(k, value, scope) if k.backend == "sie" else
                   f"write {value} to {k.backend} {k.path} (journaled)")
        if k.backend == "sie":
            click.echo(load_plan(k, "immediate", with_source=False))
        return
    from kernel_runtime.host import local_controller

    local_controller("policy").apply({name: value}, {name: k}, scope)
    console.print(f"{name} = {value} for {scope}")


@knob.command(epilog=EPILOG)
@click.argument("name")
@click.option("--cgroup", default=None, help="Only the value of this cgroup.")
@click.option("--pid", type=int, default=None, help="Only the value of this process.")
@release_option
def reset(name: str, cgroup: str | None, pid: int | None, release: str | None) -> None:
    """Back to the kernel's own value for a scope (the probes stay loaded)."""
    k = _knob(name, release)
    if k.backend != "sie":
        raise BadInputError(f"{name!r} is a {k.backend} tunable: 'autotune revert' restores it")
    _sie_backend().restore(k, None, _scope(cgroup, pid))
    console.print(f"{name}: kernel's own value for {_scope(cgroup, pid)}")


@knob.command(epilog=EPILOG)
@click.argument("name", required=False)
@release_option
def unload(name: str | None, release: str | None) -> None:
    """Detach one knob (or every loaded SIE knob): the kernel's constants apply again."""
    backend = _sie_backend()
    from kernel_runtime.sie.runtime import is_loaded

    targets = [_knob(name, release)] if name else [k for k in backend.catalog.knobs if is_loaded(k.name)]
    for k in targets:
        backend.unload_knob(k)
        console.print(f"{k.name}: unloaded")


@knob.command(epilog=EPILOG)
def status() -> None:
    """Loaded SIE knobs: value, epoch, per-site hits/applied/mismatches, jump optimization."""
    from kernel_runtime.sie import module

    backend = _sie_backend()
    table = Table("knob", "global value", "counters", "alert")
    for state in backend.status():
        counters = " ".join(f"{k}={v}" for k, v in state.counters.items())
        table.add_row(state.name, str(state.value), counters, state.alert or "")
    console.print(table)
    if module.loaded():
        console.print(f"{module.NAME}: {module.counter('written')} writes, "
                      f"{module.counter('refused')} refused")
