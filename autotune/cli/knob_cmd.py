"""``autotune knob``: list, load, set, reset, unload and inspect single knobs on this kernel.

SIE knobs come from the package's hand catalog merged with an analysis catalog (the cached
oracle catalog of this build, or ``--catalog PATH``); ``knob list`` names each one's source.

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
from rich.table import Column, Table

from autotune.core.catalog import Knob
from autotune.core.errors import AutotuneError, BadInputError, EnvironmentProblem
from kernel_runtime.sie.knobset import UNVERIFIED_FLAG

if TYPE_CHECKING:
    from kernel_runtime.controller import KnobController
    from kernel_runtime.sie import SieBackend
    from kernel_runtime.sie.knobset import KnobSet
    from kernel_runtime.sie.runtime import Mode

console = Console()

EPILOG = """\b
Examples:
  autotune knob list
  autotune knob list --catalog ~/.cache/autotune/catalogs/BUILD_ID.oracle.json
  autotune knob set IORING_MAX_ENTRIES 4096          # an oracle-verified analysis knob
  autotune knob load PIPE_DEF_BUFFERS --mode per-task
  autotune knob load SHRINK_BATCH --mode global
  autotune knob set PIPE_DEF_BUFFERS 64
  autotune knob set TCP_INIT_CWND 32 --cgroup /sys/fs/cgroup/web
  autotune knob set SHRINK_BATCH 32 --pid 4242
  autotune knob status
  autotune knob reset PIPE_DEF_BUFFERS
  autotune knob unload
  autotune knob load PIPE_DEF_BUFFERS --dry-run --release 6.12.117+deb12-cloud-amd64
"""


def _knob_set(release: str | None, catalog: str | None, allow_unverified: bool) -> KnobSet:
    """The SIE knobs of this kernel (or of ``release``'s hand catalog build, for --dry-run)."""
    from autotune.core.kernel import KernelInfo, running_kernel
    from kernel_runtime.sie.artifacts import catalog_for
    from kernel_runtime.sie.knobset import CatalogChoice, load_knob_set

    if allow_unverified:
        console.print(f"[bold red]WARNING[/]: {UNVERIFIED_FLAG}: sites the oracle did not verify "
                      "may be loaded", highlight=False)
    kernel = running_kernel()
    if release is not None and release != kernel.release:
        hand = catalog_for(release)
        kernel = hand.kernel if hand else KernelInfo(release=release, build_id="unknown",
                                                     arch=platform.machine())
    return load_knob_set(kernel, CatalogChoice(catalog, allow_unverified))


def _catalog_knobs(found: KnobSet) -> dict[str, Knob]:
    from kernel_runtime.tunables import curated_knobs

    return {k.name: k for k in curated_knobs() + found.knobs()}


def _knob(name: str, found: KnobSet, allow_unverified: bool = False) -> Knob:
    """The named knob; an analysis knob with unverified sites is refused here, before any
    plan is printed or any probe attached."""
    from kernel_runtime.sie.knobset import HAND, unverified_reason

    knobs = _catalog_knobs(found)
    if name not in knobs:
        raise BadInputError(f"unknown knob {name!r}; 'autotune knob list' shows the known ones")
    k = knobs[name]
    if k.backend == "sie" and found.origin(name) != HAND and not allow_unverified:
        why = unverified_reason(k)
        if why:
            raise BadInputError(f"knob {name!r} from {found.analysis_path}: {why}")
    return k


def _sie_backend(found: KnobSet, allow_unverified: bool, mode: Mode | None = None) -> SieBackend:
    from kernel_runtime.sie import SieBackend

    backend = SieBackend.for_running_kernel(found, allow_unverified=allow_unverified)
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


def catalog_options(fn: Any) -> Any:
    """--catalog PATH and the loudly named override of the oracle rule."""
    fn = click.option(UNVERIFIED_FLAG, "allow_unverified", is_flag=True,
                      help="UNSAFE: also load analysis sites the oracle did not verify.")(fn)
    return click.option("--catalog", type=click.Path(dir_okay=False), default=None,
                        help="SIE analysis catalog (default: the cached 'autotune analyze "
                             "--oracle' catalog of the target kernel's build-id, if any).")(fn)



@click.group(epilog=EPILOG)
def knob() -> None:
    """Single knobs on this kernel: SIE perf-consts and curated sysctl/debugfs tunables."""


def _default_text(controller: KnobController, knob: Knob) -> str:
    """A perf-const's built-in value; a tunable has none, so show what it is set to now."""
    if knob.default is not None:
        return str(knob.default)
    backend = controller.backends.get(knob.backend)
    try:
        return f"{str(backend.read(knob)).strip()} (now)" if backend is not None else "-"
    except (OSError, AutotuneError):
        return "-"


@knob.command("list", epilog=EPILOG)
@release_option
@catalog_options
def list_(release: str | None, catalog: str | None, allow_unverified: bool) -> None:
    """Every known knob, the catalog it came from, its default and domain, whether it works here."""
    from kernel_runtime.host import local_controller
    from kernel_runtime.sie import SieBackend
    from kernel_runtime.sie.knobset import HAND, unverified_reason

    found = _knob_set(release, catalog, allow_unverified)
    knobs = list(_catalog_knobs(found).values())
    controller = local_controller(knobs=found, allow_unverified=allow_unverified)
    ok, left = controller.usable(knobs)
    reasons = dict(left)
    sie = controller.backends.get("sie")
    for k in knobs:
        if k.backend != "sie":
            continue
        refused = None if allow_unverified or found.origin(k.name) == HAND else unverified_reason(k)
        if refused:
            reasons[k.name] = refused
        elif not isinstance(sie, SieBackend):
            reasons[k.name] = f"no SIE here: {SieBackend.for_running_kernel(found)}"
        elif k.name not in reasons and (note := sie.skipped_note(k)):
            reasons[k.name] = f"yes ({note})"
    table = Table(Column("knob", no_wrap=True), "backend", "catalog", "default", "domain",
                  "usable here")
    for k in knobs:
        dom = f"[{k.domain.min}, {k.domain.max}]" + "".join(f" {c.describe()}" for c in k.domain.constraints)
        origin = found.origin(k.name) if k.backend == "sie" else "curated"
        table.add_row(k.name, k.backend, origin, _default_text(controller, k), dom,
                      reasons.get(k.name, "yes"))
    console.print(table)
    if found.hand is not None:
        console.print(f"hand: the package's lab-tested catalog for {found.kernel.release}")
    if found.analysis_path is not None:
        console.print(f"{found.analysis_origin}: {found.analysis_path}")
    if found.shadowed():
        console.print(f"analysis knobs shadowed by the hand catalog: {', '.join(found.shadowed())}")
    for note in found.notes:
        console.print(note)


@knob.command(epilog=EPILOG)
@click.argument("name")
@click.option("--mode", type=click.Choice(["immediate", "per-task", "global"]), default="immediate",
              help="When a new value reaches a task (per-task: on entering a safe span; "
                   "global: when no task is inside a safe span, never forced).")
@release_option
@catalog_options
@dry_run_option
def load(name: str, mode: str, release: str | None, catalog: str | None, allow_unverified: bool,
         dry_run: bool) -> None:
    """Attach a knob's probes; the kernel's own value applies until 'knob set'."""
    found = _knob_set(release, catalog, allow_unverified)
    k = _knob(name, found, allow_unverified)
    if k.backend != "sie":
        raise BadInputError(f"knob {name!r} is a {k.backend} tunable: nothing to load, use 'knob set'")
    if dry_run:
        from kernel_runtime.sie.plan import load_plan

        click.echo(load_plan(k, cast("Mode", mode)))
        return
    backend = _sie_backend(found, allow_unverified, cast("Mode", mode))
    backend.load(k)
    note = "; ".join(n for n in (backend.skipped_note(k), backend.moved_note(k)) if n)
    console.print(f"{name}: loaded ({mode}{'; ' + note if note else ''}); "
                  "the kernel's own value applies until 'knob set'")


@knob.command("set", epilog=EPILOG)
@click.argument("name")
@click.argument("value", type=int)
@click.option("--cgroup", default=None, help="Only tasks in this cgroup v2 directory.")
@click.option("--pid", type=int, default=None, help="Only this process.")
@release_option
@catalog_options
@dry_run_option
def set_(name: str, value: int, cgroup: str | None, pid: int | None, release: str | None,
         catalog: str | None, allow_unverified: bool, dry_run: bool) -> None:
    """Make VALUE live (domain-checked, journaled; kept until reset or 'autotune revert')."""
    found = _knob_set(release, catalog, allow_unverified)
    k = _knob(name, found, allow_unverified)
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

    local_controller("policy", found, allow_unverified=allow_unverified).apply({name: value}, {name: k}, scope)
    console.print(f"{name} = {value} for {scope}")


@knob.command(epilog=EPILOG)
@click.argument("name")
@click.option("--cgroup", default=None, help="Only the value of this cgroup.")
@click.option("--pid", type=int, default=None, help="Only the value of this process.")
@release_option
@catalog_options
def reset(name: str, cgroup: str | None, pid: int | None, release: str | None,
          catalog: str | None, allow_unverified: bool) -> None:
    """Back to the kernel's own value for a scope (the probes stay loaded)."""
    found = _knob_set(release, catalog, allow_unverified)
    k = _knob(name, found, allow_unverified=True)  # resetting never loads anything new
    if k.backend != "sie":
        raise BadInputError(f"{name!r} is a {k.backend} tunable: 'autotune revert' restores it")
    _sie_backend(found, allow_unverified).restore(k, None, _scope(cgroup, pid))
    console.print(f"{name}: kernel's own value for {_scope(cgroup, pid)}")


@knob.command(epilog=EPILOG)
@click.argument("name", required=False)
@release_option
@catalog_options
def unload(name: str | None, release: str | None, catalog: str | None,
           allow_unverified: bool) -> None:
    """Detach one knob (or every loaded SIE knob): the kernel's constants apply again."""
    found = _knob_set(release, catalog, allow_unverified)
    backend = _sie_backend(found, allow_unverified)
    from kernel_runtime.sie.pins import is_loaded

    targets = [_knob(name, found, allow_unverified=True)] if name else \
        [k for k in backend.known() if is_loaded(k.name)]
    for k in targets:
        backend.unload_knob(k)
        console.print(f"{k.name}: unloaded")


@knob.command(epilog=EPILOG)
@catalog_options
def status(catalog: str | None, allow_unverified: bool) -> None:
    """Loaded SIE knobs: value, epoch, per-site hits/applied/mismatches, jump optimization."""
    from kernel_runtime.sie import module

    found = _knob_set(None, catalog, allow_unverified)
    backend = _sie_backend(found, allow_unverified)
    table = Table("knob", "catalog", "global value", "counters", "alert")
    for state in backend.status():
        counters = " ".join(f"{k}={v}" for k, v in state.counters.items())
        table.add_row(state.name, found.origin(state.name), str(state.value), counters,
                      state.alert or "")
    console.print(table)
    if module.loaded():
        console.print(f"{module.NAME}: {module.counter('written')} writes, "
                      f"{module.counter('refused')} refused")
