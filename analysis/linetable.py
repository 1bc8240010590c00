"""Source line -> machine addresses, from the whole image's DWARF line table.

Every row of a file counts, whichever compile unit it sits in, so the inlined copies of a
header's line come for free. ``llvm-dwarfdump --debug-line`` streamed and parsed here takes
about 20 s for the 6.12 cloud vmlinux (pyelftools: minutes), so the parsed table is cached
as numpy arrays per build-id and later analyses load it in well under a second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autotune.core.errors import EnvironmentProblem


@dataclass(frozen=True)
class Row:
    """One line-table row: the address range [start, end) attributed to file:line."""

    start: int
    end: int
    file: str
    line: int
    cu: str


class LineTable:
    """Rows indexed by (file, line); ``cu`` is the compile unit's primary source (-> object)."""

    def __init__(self, files: list[str], cus: list[str], start: np.ndarray, end: np.ndarray,
                 file_id: np.ndarray, line: np.ndarray, cu_id: np.ndarray) -> None:
        self.files, self.cus = files, cus
        self.start, self.end, self.file_id, self.line, self.cu_id = start, end, file_id, line, cu_id
        key = file_id.astype(np.uint64) << np.uint64(32) | line.astype(np.uint64)
        self._order = np.argsort(key, kind="stable")
        self._keys = key[self._order]
        self._file_index = {f: i for i, f in enumerate(files)}

    def has_file(self, path: str) -> bool:
        return path in self._file_index

    def rows(self, path: str, line: int) -> list[Row]:
        """Every row of ``path:line`` (``path`` relative to the source tree root)."""
        fid = self._file_index.get(path)
        if fid is None:
            return []
        key = np.uint64(fid) << np.uint64(32) | np.uint64(line)
        lo = int(np.searchsorted(self._keys, key, "left"))
        hi = int(np.searchsorted(self._keys, key, "right"))
        out = []
        for i in self._order[lo:hi]:
            out.append(Row(int(self.start[i]), int(self.end[i]), path, line,
                           self.cus[int(self.cu_id[i])]))
        return out

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".lines.{os.getpid()}.npz"
        np.savez(tmp, start=self.start, end=self.end, file_id=self.file_id, line=self.line,
                 cu_id=self.cu_id)
        (directory / "lines-files.json").write_text(json.dumps({"files": self.files,
                                                                 "cus": self.cus}))
        os.replace(tmp, directory / "lines.npz")

    @classmethod
    def load(cls, directory: Path) -> LineTable | None:
        try:
            arrays = np.load(directory / "lines.npz")
            names = json.loads((directory / "lines-files.json").read_text())
        except (OSError, ValueError):
            return None
        return cls(names["files"], names["cus"], arrays["start"], arrays["end"],
                   arrays["file_id"], arrays["line"], arrays["cu_id"])


def _normalise(directory: str, name: str, comp_dir: str) -> str:
    path = name if name.startswith("/") else f"{directory}/{name}" if directory else name
    if comp_dir and path.startswith(comp_dir + "/"):
        path = path[len(comp_dir) + 1:]
    while path.startswith("./"):
        path = path[2:]
    return os.path.normpath(path)


def parse(image: Path) -> LineTable:
    """Stream ``llvm-dwarfdump --debug-line`` over ``image`` into a LineTable."""
    tool = shutil.which("llvm-dwarfdump") or shutil.which("llvm-dwarfdump-14")
    if tool is None:
        raise EnvironmentProblem("llvm-dwarfdump not found: apt-get install llvm "
                                 "(or run 'bash scripts/setup.sh')")
    files: list[str] = []
    file_index: dict[str, int] = {}
    cus: list[str] = []
    starts: list[int] = []
    lines: list[int] = []
    fids: list[int] = []
    cuids: list[int] = []
    ends_seq: list[bool] = []
    dirs: dict[int, str] = {}
    local: dict[int, int] = {}
    pending_name = ""
    pending_idx = 0
    comp_dir = ""
    proc = subprocess.Popen([tool, "--debug-line", str(image)], stdout=subprocess.PIPE,
                            text=True, bufsize=1 << 20)
    assert proc.stdout is not None
    for raw in proc.stdout:
        if raw.startswith("0x"):
            parts = raw.split()
            starts.append(int(parts[0], 16))
            lines.append(int(parts[1]))
            fids.append(local.get(int(parts[3]), 0))
            cuids.append(len(cus) - 1)
            ends_seq.append(parts[-1] == "end_sequence")
        elif raw.startswith("debug_line["):
            dirs, local, comp_dir = {}, {}, ""
        elif raw.startswith("include_directories["):
            idx = int(raw[raw.index("[") + 1:raw.index("]")])
            dirs[idx] = raw.split("=", 1)[1].strip().strip('"')
            if idx == 0:
                comp_dir = dirs[0]
        elif raw.startswith("file_names["):
            pending_idx = int(raw[raw.index("[") + 1:raw.index("]")])
        else:
            stripped = raw.strip()
            if stripped.startswith("name:"):
                pending_name = stripped.split(":", 1)[1].strip().strip('"')
            elif stripped.startswith("dir_index:"):
                path = _normalise(dirs.get(int(stripped.split(":")[1]), ""), pending_name, comp_dir)
                if path not in file_index:
                    file_index[path] = len(files)
                    files.append(path)
                local[pending_idx] = file_index[path]
                if pending_idx == 0:
                    cus.append(path)
    if proc.wait() != 0:
        raise EnvironmentProblem(f"llvm-dwarfdump failed on {image}: is it an ELF file with DWARF?")
    start = np.array(starts, dtype=np.uint64)
    end = _row_ends(start)
    keep = ~np.array(ends_seq, dtype=bool)
    return LineTable(files, cus, start[keep], end[keep], np.array(fids, dtype=np.uint32)[keep],
                     np.array(lines, dtype=np.uint32)[keep], np.array(cuids, dtype=np.uint32)[keep])


def _row_ends(start: np.ndarray) -> np.ndarray:
    """A row ends at the next row with a different address (several rows share one)."""
    n = len(start)
    if n == 0:
        return start.copy()
    marks = np.full(n, n - 1, dtype=np.int64)
    differs = np.nonzero(start[1:] != start[:-1])[0] + 1
    marks[differs - 1] = differs
    nxt = np.minimum.accumulate(marks[::-1])[::-1]
    return start[nxt]


def line_table(image: Path, cache: Path) -> LineTable:
    """The cached table for ``image`` (cache: a per-build-id directory), parsing on a miss."""
    table = LineTable.load(cache)
    if table is None:
        table = parse(image)
        table.save(cache)
    return table
