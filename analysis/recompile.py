"""The oracle's builds: one object recompiled at other values of one constant.

The kernel's own compile command (kbuild's ``.<obj>.o.cmd``: the shipped config, Debian's
gcc 12) is re-run with the changed definition in a private overlay directory searched
before the tree; the shared tree is never edited. Two choices here decide whether the diff
means anything:

- the new value keeps the definition's C type (``__typeof__`` of the original body): a
  ``(SCHED_CAPACITY_SCALE / 100)`` rewritten as a plain ``(21)`` turns long arithmetic into
  int arithmetic and GCC emits different code (``lea ecx`` for ``add r14``) even at V0;
- the values themselves: some make GCC choose a different code shape (a shift by 32 is
  undefined for a 32-bit operand, an odd value changes a schedule), so the oracle has
  several pairs to try, best first.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from analysis import kernel_tree
from analysis.seeds import Seed
from autotune.core.errors import EnvironmentProblem

SHIFT_MAX = 31  # a shift count must stay below the 32-bit operand width


def value_pairs(v0: int, *, pow2: bool = False, shift: bool = False) -> list[tuple[int, int]]:
    """Pairs of other values for the oracle, best first, each differing from V0 and each other.

    Every pair moves far from V0: a derived value such as V/1000000 must change too, or its
    instruction looks V-independent and stays an untuned copy. The later pairs are for when
    GCC reshapes a function at the first (a derived value equal to another constant of the
    function gets merged with it: MAX_SLACK/1000000 = 200 at V=2*V0 beside a literal 200).
    The last pair lies below V0, for a value the code cannot hold above it (a 5-bit
    bitfield); the oracle then bounds the domain by V0. A shift count stays within 1..31, a
    pow2 constant stays a power of two.
    """
    if shift:
        # V0+1 = 2**k - 1 lets GCC test 'a > V || b > V' as '(a | b) > V' (TCP_MAX_WSCALE
        # at 15): the last pair steps around it
        pairs = [(v0 // 2, 2 * v0)] if pow2 else [(v0 + 1, min(2 * v0, SHIFT_MAX)),
                                                  (v0 - 1, v0 + 1),
                                                  (v0 - 1, min(2 * v0, SHIFT_MAX))]
        ok = [(a, b) for a, b in pairs if 0 < a <= SHIFT_MAX and 0 < b <= SHIFT_MAX]
        pairs = ok or [(v0 + 1, v0 + 2)]
    elif pow2 or (v0 >= 2 and v0 & (v0 - 1) == 0):
        pairs = [(v0 * 2, v0 * 4), (v0 * 4, v0 * 8), (v0 // 2, v0 // 4)]
    else:
        pairs = [(2 * v0 + 1, 3 * v0 + 2), (3 * v0 + 2, 5 * v0 + 3), (5 * v0 + 3, 7 * v0 + 5),
                 (v0 // 2, v0 // 3)]
    return [(a, b) for a, b in dict.fromkeys(pairs) if len({v0, a, b}) == 3 and a > 0 < b]


def rewrite_line(seed: Seed, line: str, value: int, typed: bool = True) -> str:
    """The seed's definition (or literal) line with V0 replaced by ``value``.

    A macro's new body keeps the old body's type (``typed``); the untyped form is for a
    definition the preprocessor itself evaluates (``#if``), where ``__typeof__`` is no
    expression. A multi-line ``#define`` becomes one line here; the caller blanks the others.
    """
    if seed.kind == "const":
        return re.sub(r"=\s*[^;]+;", f"= ({value});", line, count=1)
    if seed.kind == "macro" and re.match(r"\s*#\s*define\s+\w+\s", line):
        body = seed.body
        if typed:
            new = f"((__typeof__({body}))({value}))"
        elif "unsigned" in body:
            new = f"((unsigned)({value}))"
        elif re.search(r"\d+UL?\)?\s*$", body):
            new = f"({value}{'UL' if 'UL' in body else 'U'})"
        else:
            new = f"({value})"
        if len(seed.lines) > 1:
            return f"#define {seed.name} {new}\n"
        return line.replace(body, new, 1)
    literal = re.compile(r"(?<![\w.])" + str(seed.default) + r"(?![\w.])")
    hits = list(literal.finditer(line))
    if not hits:
        raise EnvironmentProblem(f"{seed.source}: literal {seed.default} not found to rewrite")
    m = hits[0] if seed.kind == "macro" else hits[-1]
    return line[:m.start()] + str(value) + line[m.end():]


def compile_command(tree: Path, obj: str) -> list[str]:
    """kbuild's exact gcc command for ``obj`` (building it once if needed)."""
    cmd_file = tree / Path(obj).parent / f".{Path(obj).name}.cmd"
    with kernel_tree.tree_lock(tree):
        if not cmd_file.exists():
            res = subprocess.run(["make", "-s", obj], cwd=tree, capture_output=True, text=True,
                                 check=False)
            if res.returncode != 0 or not cmd_file.exists():
                raise EnvironmentProblem(f"make {obj} failed: {res.stderr.strip()[-200:]}")
    first = cmd_file.read_text().splitlines()[0]
    return shlex.split(first.split(":=", 1)[1].split(";")[0])


def _overlay_command(cmd: list[str], tree: Path, obj: str, overlay: Path, changed: str,
                     out: Path) -> list[str]:
    src = str(Path(obj).with_suffix(".c"))
    new: list[str] = []
    first_include = True
    for tok in cmd:
        if tok.startswith("-Wp,-MMD"):
            continue
        if tok.startswith("-I") and first_include:
            first_include = False
            root = next((r for r in _include_roots(cmd) if changed.startswith(r + "/")), None)
            if root:
                new.append(f"-I{overlay / root}")
        new.append(tok)
    i = new.index("-o")
    new[i + 1] = str(out)
    new[new.index(src)] = str(overlay / src)
    return [*new, f"-iquote{tree / Path(src).parent}", "-g0"]


def _include_roots(cmd: list[str]) -> list[str]:
    return [t[2:].removeprefix("./") for t in cmd if t.startswith("-I")]


class Variants:
    """Builds of one object at values of one seed, each value compiled once.

    Every build uses the same rewrite form: if the typed form does not compile (the macro
    is used in ``#if``), all builds are redone untyped.
    """

    def __init__(self, tree: Path, seed: Seed, obj: str, work: Path, jobs: int) -> None:
        self.tree, self.seed, self.obj, self.work, self.jobs = tree, seed, obj, work, jobs
        self.typed = seed.kind == "macro"
        self.out: dict[int, Path] = {}

    def build(self, values: list[int]) -> list[Path]:
        """The objects at ``values`` (compiling the ones not built yet)."""
        todo = [v for v in dict.fromkeys(values) if v not in self.out]
        try:
            self._compile(todo)
        except EnvironmentProblem:
            if not self.typed:
                raise
            self.typed = False
            redo = list(dict.fromkeys([*self.out, *todo]))
            self.out.clear()
            self._compile(redo)
        return [self.out[v] for v in values]

    def _compile(self, values: list[int]) -> None:
        tree, seed, obj = self.tree, self.seed, self.obj
        cmd = compile_command(tree, obj)
        src = str(Path(obj).with_suffix(".c"))
        lines = (tree / seed.file).read_text(errors="replace").splitlines(keepends=True)
        form = "typed" if self.typed else "plain"

        def one(value: int) -> Path:
            overlay = self.work / f"{form}-{value}"
            # the whole directory: quoted includes (unity builds such as kernel/sched's) must
            # resolve to the overlay's copies, not the tree's
            for rel_dir in {Path(src).parent, Path(seed.file).parent}:
                (overlay / rel_dir).mkdir(parents=True, exist_ok=True)
                for f in (tree / rel_dir).iterdir():
                    if f.suffix in (".c", ".h") and f.is_file():
                        shutil.copyfile(f, overlay / rel_dir / f.name)
            changed = list(lines)
            changed[seed.line - 1] = rewrite_line(seed, lines[seed.line - 1], value, self.typed)
            for n in seed.lines[1:]:  # continuation lines (blank: line numbers hold)
                changed[n - 1] = "\n"
            (overlay / seed.file).write_text("".join(changed))
            out = overlay / "out.o"
            res = subprocess.run(_overlay_command(cmd, tree, obj, overlay, seed.file, out),
                                 cwd=tree, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise EnvironmentProblem(f"oracle compile of {obj} at {seed.name}={value} "
                                         f"failed: {res.stderr.strip()[-300:]}")
            return out

        with ThreadPoolExecutor(max_workers=max(1, self.jobs)) as pool:
            for value, out in zip(values, pool.map(one, values), strict=True):
                self.out[value] = out
