"""What loading an analysis catalog costs in BPF objects: cold clang time per site object.

Run: .venv/bin/python bench/catalog_objects_bench.py [--catalog PATH] [--limit N] [--lab K]
Renders every site of the catalog (default: the cached whole-list oracle catalog of the lab
build), compiles each once into an empty cache against the lab kernel's BTF, and prints the
median and p90 seconds per object, the total, and the object sizes. With ``--lab K`` it also
boots a private lab VM and ships the objects of the first K knobs through the agent, printing
the host compile and push times of that shipment.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from analysis.debian_kernel import resolve_version, version_dir
from autotune.core.catalog import load_catalog
from autotune.core.errors import BadInputError
from kernel_runtime.sie.knobset import CatalogChoice, default_analysis_catalog
from kernel_runtime.sie.render import Rendered, compile_object, render_site

LAB_BUILD_ID = "7f76f39faf07f34cfa9fadd801e131bfa8cb6dc3"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--catalog", type=Path, default=default_analysis_catalog(LAB_BUILD_ID))
    ap.add_argument("--limit", type=int, default=0, help="Compile only this many objects.")
    ap.add_argument("--lab", type=int, default=0, help="Ship the objects of this many knobs.")
    args = ap.parse_args()
    catalog = load_catalog(args.catalog)
    version = resolve_version()
    btf = version_dir(version) / "root/usr/src" / f"linux-headers-{version.release}" / "vmlinux"
    rendered: dict[str, Rendered] = {}
    unrenderable = 0
    for k in catalog.knobs:
        for i, s in enumerate(k.sites):
            try:
                r = render_site(k, s, i)
            except BadInputError:
                unrenderable += 1
                continue
            rendered[r.object_name] = r
    todo = list(rendered.values())[: args.limit or None]
    times, sizes = [], []
    with tempfile.TemporaryDirectory(prefix="catalog-bench-") as tmp:
        compile_object(todo[0], btf=btf, cache=Path(tmp) / "warm")  # vmlinux.h once, not timed
        for r in todo:
            t = time.perf_counter()
            obj = compile_object(r, btf=btf, cache=Path(tmp) / "warm")
            times.append(time.perf_counter() - t)
            sizes.append(obj.stat().st_size)
    times.sort()
    print(f"{len(catalog.knobs)} knobs, {len(rendered)} distinct site objects "
          f"({unrenderable} sites no template expresses); compiled {len(todo)}")
    print(f"clang per object: median {statistics.median(times):.2f} s, "
          f"p90 {times[int(0.9 * (len(times) - 1))]:.2f} s, total {sum(times):.1f} s")
    print(f"object size: median {statistics.median(sizes) / 1024:.1f} KiB, total "
          f"{sum(sizes) / 1024:.0f} KiB")
    if args.lab:
        ship(args.catalog, args.lab)


def ship(catalog: Path, count: int) -> None:
    from kernel_runtime.lab.target import LabTarget
    from kernel_runtime.lab.vm import Lab

    lab = LabTarget(lab=Lab.private(), catalog=CatalogChoice(str(catalog)))
    try:
        assert lab.knob_set is not None
        knobs, _ = lab.control.usable(lab.knob_set.extras())
        lab.objects.ship(knobs[:count])
        for s in lab.objects.shipments:
            print(f"lab shipment: {s.objects} objects, {s.size / 1024:.0f} KiB: host compile "
                  f"{s.compile_seconds:.1f} s (cache by hash), push {s.push_seconds:.2f} s")
    finally:
        lab.close()


if __name__ == "__main__":
    main()
