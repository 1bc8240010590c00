"""A private, prepared copy of the kernel source: for seed lookup and single-object compiles.

The oracle recompiles one object with the shipped configuration and compiler, so the tree
is configured with the exact ``/boot/config-<release>`` of the analysed build and
``make prepare``d once (generated headers, objtool, fixdep): about five minutes on two cores,
then cached under ``<cache>/analysis/<package-version>/``. The tree is ours alone; variants
never edit it (see ``analysis.oracle``), so concurrent analyses can share it read-only.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autotune.core.errors import EnvironmentProblem

# Debian's config names signing keys from its build machine; a single-object compile
# needs none of them, and `make prepare` fails if they are missing.
_CONFIG_BLANKS = ("CONFIG_SYSTEM_TRUSTED_KEYS", "CONFIG_SYSTEM_REVOCATION_KEYS",
                  "CONFIG_MODULE_SIG_KEY")


def analysis_cache() -> Path:
    """``<cache>/analysis``; honours AUTOTUNE_CACHE_DIR like the rest of the product."""
    base = Path(os.environ.get("AUTOTUNE_CACHE_DIR") or "~/.cache/autotune").expanduser()
    path = base / "analysis"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


@contextmanager
def tree_lock(tree: Path) -> Iterator[None]:
    """Serialise builds in ``tree`` (make writes objects and .cmd files there)."""
    fd = _lock(tree.parent / ".lock")
    try:
        yield
    finally:
        os.close(fd)


def source_tree(tarball: Path, key: str) -> Path:
    """Extract ``tarball`` once into ``<cache>/analysis/<key>/src`` and return the tree root."""
    base = analysis_cache() / key
    base.mkdir(parents=True, exist_ok=True)
    tree = base / "src"
    marker = base / ".extracted"
    if marker.exists():
        return tree
    fd = _lock(base / ".lock")
    try:
        if marker.exists():
            return tree
        if not tarball.exists():
            raise EnvironmentProblem(f"kernel source {tarball} missing: run 'autotune analyze' "
                                     "with network access to apt so it can fetch linux-source-6.12")
        tmp = base / ".src.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        with tarfile.open(tarball) as tf:
            tf.extractall(tmp, filter="fully_trusted")
        (top,) = list(tmp.iterdir())
        shutil.rmtree(tree, ignore_errors=True)
        top.rename(tree)
        tmp.rmdir()
        marker.write_text(str(tarball) + "\n")
        return tree
    finally:
        os.close(fd)


def prepared_tree(tree: Path, config: Path, *, jobs: int = 2) -> Path:
    """A tree configured with ``config`` and ``make prepare``d once; returns its root.

    A tree we extracted ourselves is prepared in place the first time. Any other case (a
    user's ``--source`` tree, or our tree already prepared for another config, such as
    another flavour of the same source package) gets a private copy keyed by the config's
    digest: writing ``.config`` or objects into a user's tree would edit it, and compiling
    with another config's generated headers would make the oracle diff the wrong code.
    """
    if not config.exists():
        raise EnvironmentProblem(f"kernel config {config} missing: fetch the "
                                 "linux-image-*-unsigned package (autotune lab fetch)")
    digest = hashlib.sha256(config.read_bytes()).hexdigest()[:16]
    marker = tree.parent / ".prepared"
    if _prepared_for(marker) == digest:
        return tree
    if tree.parent.parent != analysis_cache() or _prepared_for(marker) is not None:
        return _prepared_copy(tree, config, digest, jobs)
    fd = _lock(tree.parent / ".lock")
    try:
        if _prepared_for(marker) is None:
            _configure(tree, config, jobs)
            marker.write_text(digest + "\n")
    finally:
        os.close(fd)
    return tree if _prepared_for(marker) == digest else _prepared_copy(tree, config, digest, jobs)


def _prepared_for(marker: Path) -> str | None:
    """The digest of the config a tree was prepared with (None: not prepared yet)."""
    try:
        return marker.read_text().strip()
    except FileNotFoundError:
        return None


def _prepared_copy(tree: Path, config: Path, digest: str, jobs: int) -> Path:
    """``<cache>/analysis/config-<digest>/src``: a copy of ``tree`` cleaned and prepared."""
    base = analysis_cache() / f"config-{digest}"
    base.mkdir(parents=True, exist_ok=True)
    copy, marker = base / "src", base / ".prepared"
    fd = _lock(base / ".lock")
    try:
        if _prepared_for(marker) != digest:
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(tree, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
            res = subprocess.run(["make", "-s", "mrproper"], cwd=copy, capture_output=True,
                                 text=True, check=False)
            if res.returncode != 0:
                raise EnvironmentProblem(f"make mrproper in {copy} failed: {res.stderr.strip()[-200:]}")
            _configure(copy, config, jobs)
            marker.write_text(digest + "\n")
    finally:
        os.close(fd)
    return copy


def _configure(tree: Path, config: Path, jobs: int) -> None:
    lines = []
    for line in config.read_text().splitlines():
        if line.split("=", 1)[0] in _CONFIG_BLANKS:
            line = line.split("=", 1)[0] + '=""'
        lines.append(line)
    (tree / ".config").write_text("\n".join(lines) + "\n")
    for target in (["olddefconfig"], ["prepare", f"-j{jobs}"]):
        res = subprocess.run(["make", "-s", *target], cwd=tree, capture_output=True,
                             text=True, check=False)
        if res.returncode != 0:
            tail = " | ".join(res.stderr.strip().splitlines()[-3:])
            raise EnvironmentProblem(f"make {target[0]} in {tree} failed ({tail}): install the "
                                     "build tools with 'bash scripts/setup.sh'")
