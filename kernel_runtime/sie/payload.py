"""What the lab guest needs for SIE, built on the host where headers and clang exist.

The lab image builder calls ``lab_payload(version_dir)`` and copies each (host file,
guest path) pair into the initramfs. Everything is cached under the host's cache dir by
kernel release (module) and by (template, site) hash (BPF objects).
"""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autotune.core.errors import EnvironmentProblem
from kernel_runtime.sie import artifacts, module
from kernel_runtime.sie.render import (
    Rendered,
    compile_object,
    render_refusal,
    render_site,
    render_span,
    vmlinux_header,
)


def _release(version_dir: Path) -> str:
    record = version_dir / "VERSION.json"
    if record.exists():
        return str(json.loads(record.read_text())["release"])
    heads = [p.name for p in (version_dir / "root/usr/src").glob("linux-headers-*")
             if not p.name.endswith("-common")]
    if len(heads) != 1:
        raise EnvironmentProblem(f"{version_dir}: cannot tell the kernel release "
                                 "(no VERSION.json, not exactly one headers tree)")
    return heads[0].removeprefix("linux-headers-")


def _headers(version_dir: Path, release: str) -> Path:
    headers = version_dir / "root/usr/src" / f"linux-headers-{release}"
    if not headers.exists():
        raise EnvironmentProblem(f"{headers} missing: run 'autotune lab build' (fetches the headers)")
    return headers


def compile_for_lab(version_dir: Path, sources: list[Rendered]) -> dict[str, bytes]:
    """Objects (name -> bytes) for site programs a lab guest rendered, compiled here against
    the lab kernel's BTF into the same cache the image's objects come from."""
    release = _release(version_dir)
    btf = _headers(version_dir, release) / "vmlinux"
    cache = artifacts.build_dir(release) / "bpf"
    vmlinux_header(btf, cache)  # once, before clang runs in parallel (one per core)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        paths = list(pool.map(lambda r: compile_object(r, btf=btf, cache=cache), sources))
    return {r.object_name: p.read_bytes() for r, p in zip(sources, paths, strict=True)}


def lab_payload(version_dir: Path) -> list[tuple[Path, str]]:
    """(host file, guest path) pairs: module, catalog and precompiled BPF objects."""
    release = _release(version_dir)
    headers = _headers(version_dir, release)
    out = artifacts.build_dir(release)
    guest = artifacts.GUEST_DIR
    pairs = [(module.build(headers, out), str(guest / f"{module.NAME}.ko"))]
    catalog = artifacts.bundled_catalog(release)
    if catalog is None:
        return pairs
    btf = headers / "vmlinux"
    objects = {compile_object(r, btf=btf, cache=out / "bpf") for r in (render_span(), render_refusal())}
    for knob in catalog.knobs:
        for i, site in enumerate(knob.sites):
            objects.add(compile_object(render_site(knob, site, i), btf=btf, cache=out / "bpf"))
    pairs += [(obj, str(guest / "bpf" / obj.name)) for obj in sorted(objects)]
    with tempfile.NamedTemporaryFile("w", dir=out, suffix=".json", delete=False) as fh:
        fh.write(catalog.model_dump_json(indent=1))
    shipped = out / "catalog.json"
    Path(fh.name).replace(shipped)
    pairs.append((shipped, str(guest / "catalog.json")))
    return pairs
