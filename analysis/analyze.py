"""``autotune analyze`` as a library call: one kernel build -> one validated catalog.

Stages report through a ``Progress`` callback so the CLI can show them with rich while tests
and benchmarks call ``analyze`` directly. Results are cached per build-id (and seed set):
offsets and expressions only mean something for the exact binary they came from.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from analysis import assemble, find_sites, kernel_tree, linetable, modules, preproc, seeds
from analysis.elfimage import Image
from analysis.kernel_files import KernelFiles
from analysis.typesizes import TypeSizes
from autotune.core.catalog import Catalog, Knob, UnsupportedKnob, load_catalog
from autotune.core.errors import BadInputError

# The paper's 140 constants (Linux 6.14), shipped with the package so an installed or freshly
# cloned copy has its seed list without the steering repository beside it.
PAPER_SEEDS = Path(__file__).resolve().parent / "data" / "perf_consts_paper_140.tsv"

# (stage, done, total): total 0 means indeterminate
Progress = Callable[[str, int, int], None]


def _quiet(stage: str, done: int, total: int) -> None:
    return None


@dataclass
class Result:
    catalog: Catalog
    coverage: list[assemble.Coverage] = field(default_factory=list)
    path: Path | None = None
    cached: bool = False


def catalogs_dir() -> Path:
    base = Path(os.environ.get("AUTOTUNE_CACHE_DIR") or "~/.cache/autotune").expanduser()
    path = base / "catalogs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def seed_list(tsv: Path, names: list[str], tree: Path, hz: int,
              enabled: frozenset[str] | None = None,
              sizes: TypeSizes | None = None) -> list[seeds.Seed]:
    """The paper's seeds (or only ``names`` among them / user NAME or file:line seeds)."""
    if not names and not tsv.exists():
        raise BadInputError(f"seed list {tsv} missing: name constants with --const NAME "
                            "or reinstall the package (it ships the list)")
    rows = {n: (h, d) for n, h, d in seeds.paper_seeds(tsv)} if tsv.exists() else {}
    wanted = names or list(rows)
    out: list[seeds.Seed] = []
    for name in wanted:
        if ":" in name and name not in rows:
            out.append(seeds.file_line_seed(name, tree))
        else:
            hint = rows.get(name, ("", ""))[0]
            out.append(seeds.resolve(name, hint, tree, hz, enabled=enabled, sizes=sizes))
    seeds.find_uses(out, tree)
    return out


def cache_path(build_id: str, names: list[str], oracle: bool) -> Path:
    key = build_id
    if names:
        key += "-" + hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:10]
    return catalogs_dir() / f"{key}{'.oracle' if oracle else ''}.json"


def load_cached(build_id: str, names: list[str], oracle: bool) -> Result | None:
    for path in [cache_path(build_id, names, True)] + ([] if oracle else
                                                       [cache_path(build_id, names, False)]):
        side = _coverage_path(path)
        if path.exists() and side.exists():
            cov = [assemble.Coverage(**c) for c in json.loads(side.read_text())]
            return Result(load_catalog(path), cov, path, cached=True)
    return None


def analyze(kernel: KernelFiles, *, names: list[str], oracle: bool, jobs: int,
            tsv: Path = PAPER_SEEDS, progress: Progress = _quiet, force: bool = False) -> Result:
    progress("reading symbols", 0, 0)
    image = Image(kernel.vmlinux)
    build_id = image.build_id
    if not force and (hit := load_cached(build_id, names, oracle)) is not None:
        return hit
    progress("line table (cached per build-id)", 0, 0)
    table = linetable.line_table(kernel.vmlinux, kernel_tree.analysis_cache() / build_id)
    progress("resolving seeds in the source", 0, 0)
    seed_objs = seed_list(tsv, names, kernel.source, kernel.hz,
                          preproc.enabled_options(kernel.config),
                          TypeSizes(kernel.vmlinux, kernel.modules_debug))
    macros = seeds.known_macros(kernel.hz)
    scales = {s.name: find_sites.scale_of(s, macros) for s in seed_objs}
    images = [(image, table)]
    if kernel.modules_debug is not None:
        missing = {f"{u.file}:{u.line}" for s in seed_objs for u in s.uses
                   if not find_sites.ranges_of(table, u.file, u.line)[0]}
        kos = modules.candidates_for(seed_objs, missing, kernel.modules_debug)
        for k, ko in enumerate(kos):
            progress("module line tables (cached per build-id)", k, len(kos))
            images.append(modules.module_image(ko, kernel_tree.analysis_cache() / build_id))
        progress("module line tables (cached per build-id)", len(kos), len(kos))
    found = find_sites.find(seed_objs, images, scales, jobs=jobs,
                            on_function=lambda d, t: progress("symbolic spans", d, t))
    if oracle:
        from analysis import oracle as oracle_mod

        oracle_mod.verify_all(kernel, {im.module: im for im, _ in images}, found, jobs=jobs,
                              progress=lambda d, t: progress("oracle recompiles", d, t))
    knobs: list[Knob] = []
    unsupported: list[UnsupportedKnob] = []
    coverage: list[assemble.Coverage] = []
    for name in [s.name for s in seed_objs]:
        knob, unsup, cov = assemble.assemble(found[name])
        knobs += [knob] if knob else []
        unsupported += [unsup] if unsup else []
        coverage.append(cov)
    catalog = Catalog(kernel=kernel.info(build_id), knobs=knobs, unsupported=unsupported)
    path = cache_path(build_id, names, oracle)
    _write(_coverage_path(path), json.dumps([c.__dict__ for c in coverage], indent=1))
    _write(path, catalog.model_dump_json(indent=1))
    return Result(catalog, coverage, path)


def _coverage_path(catalog: Path) -> Path:
    return catalog.with_name(catalog.name.removesuffix(".json") + ".coverage.json")


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
