"""Seeds: which constants to catalog, where 6.12 defines them, their default V0 and their uses.

The paper's list names Linux 6.14 constants; each is looked up in the analysed tree (absent
ones are reported, not guessed). A seed is a macro (``#define NAME value``), a static
variable (tuned through memory, not SIE: reported as unsupported), or a literal inside a
source line (``file:line`` or an expression from the list, such as ``ca->delay_min >> 3``).
"""

from __future__ import annotations

import ast
import csv
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from autotune.core.errors import BadInputError

# Scanned for uses: what an x86-64 build can compile.
SCAN_DIRS = ("arch/x86", "block", "crypto", "drivers", "fs", "include", "init", "io_uring", "ipc",
             "kernel", "lib", "mm", "net", "security", "virt")
_CAST = re.compile(r"\(\s*(?:unsigned|signed|int|long|u8|u16|u32|u64|s32|s64|size_t|"
                   r"unsigned\s+int|unsigned\s+long|long\s+long)\s*\)")
_SUFFIX = re.compile(r"\b(\d+)(?:[uU][lL]{0,2}|[lL]{1,2}[uU]?)\b")
_LITERAL = re.compile(r"(?<![\w.])(\d+)(?![\w.])")


@dataclass
class Use:
    file: str
    line: int
    text: str


@dataclass
class Seed:
    """One constant to catalog, resolved against the analysed source tree."""

    name: str
    kind: str  # "macro" | "variable" | "literal" | "absent"
    file: str = ""
    line: int = 0
    body: str = ""
    default: int | None = None
    problem: str = ""
    uses: list[Use] = field(default_factory=list)

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}" if self.file else ""


def known_macros(hz: int) -> dict[str, int]:
    """Units the defaults are written in, for this build's CONFIG_HZ."""
    nsec = 1_000_000_000
    return {"HZ": hz, "NSEC_PER_SEC": nsec, "NSEC_PER_MSEC": 1_000_000, "NSEC_PER_USEC": 1000,
            "USEC_PER_MSEC": 1000, "USEC_PER_SEC": 1_000_000, "MSEC_PER_SEC": 1000,
            "PAGE_SIZE": 4096, "SCHED_CAPACITY_SCALE": 1024, "HPAGE_PMD_NR": 512,
            "TICK_NSEC": (nsec + hz // 2) // hz}


def evaluate(text: str, macros: dict[str, int]) -> int | None:
    """The value of a C constant expression, or None when it is not one we can fold."""
    msecs = re.fullmatch(r"\s*msecs_to_jiffies\((\d+)\)\s*", text)
    if msecs:
        return -(-int(msecs.group(1)) * macros["HZ"] // 1000)
    text = _SUFFIX.sub(r"\1", _CAST.sub("", text)).replace("/", "//")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        return None

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in macros:
            return macros[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
            if type(node.op) in ops:
                return ops[type(node.op)]
            if isinstance(node.op, ast.FloorDiv) and b:
                return a // b
            if isinstance(node.op, ast.LShift):
                return a << b
            if isinstance(node.op, ast.RShift):
                return a >> b
        raise ValueError(ast.dump(node))

    try:
        return ev(tree)
    except (ValueError, RecursionError):
        return None


def _file_defines(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for m in re.finditer(r"^\s*#\s*define\s+(\w+)\s+(.+?)\s*(?:/\*.*)?$", text, re.M):
        out.setdefault(m.group(1), m.group(2))
    return out


def _locate(tree: Path, name: str, hint: str) -> tuple[str, int, str, str] | None:
    """(file, line, kind, body) of NAME's definition, preferring the hinted file."""
    define = re.compile(r"^\s*#\s*define\s+" + re.escape(name) + r"(\(.*?\))?\s+(.+?)\s*(?:/\*.*)?$")
    variable = re.compile(r"^\s*static\s+(?:const\s+)?[\w\s]*?\b" + re.escape(name)
                          + r"\s*=\s*([^;]+);")
    def scan(rel: str) -> tuple[str, int, str, str] | None:
        try:
            lines = (tree / rel).read_text(errors="replace").splitlines()
        except OSError:
            return None
        for i, text in enumerate(lines, 1):
            for regex, kind in ((define, "macro"), (variable, "variable")):
                m = regex.match(text)
                if m and kind == "macro":
                    return rel, i, "function-macro" if m.group(1) else "macro", m.group(2)
                if m:
                    return rel, i, kind, m.group(1)
        return None

    hit = scan(hint) if hint else None
    if hit:
        return hit
    found = subprocess.run(["grep", "-rlE", r"#\s*define\s+" + name + r"\b", *SCAN_DIRS],
                           cwd=tree, capture_output=True, text=True, check=False).stdout
    for rel in found.split():
        hit = scan(rel)
        if hit:
            return hit
    return None


def resolve(name: str, hint: str, tree: Path, hz: int, literal_text: str = "") -> Seed:
    """Find one seed in the tree. ``literal_text``: an expression seed's source text."""
    macros = known_macros(hz)
    if literal_text or not re.fullmatch(r"\w+", name):
        return _resolve_literal(name, hint, tree, literal_text or name, macros)
    found = _locate(tree, name, hint)
    if found is None:
        return Seed(name, "absent", problem="not defined in this kernel's source (absent in 6.12)")
    rel, line, kind, body = found
    if kind == "function-macro":
        # the margin of a comparison macro such as fits_capacity(): its non-scale literal
        lits = [int(x) for x in _LITERAL.findall(body) if int(x) != 1024]
        return Seed(name, "macro", rel, line, body, lits[0] if lits else None,
                    problem="" if lits else f"function-like macro {body!r} has no literal")
    macros |= {k: v for k, v in ((k, evaluate(b, macros)) for k, b in
                                 _file_defines(tree / rel).items() if k != name) if v is not None}
    seed = Seed(name, kind, rel, line, body, evaluate(body, macros))
    if kind == "variable":
        seed.problem = "a static variable, not a compiled-in constant: tune it as memory"
    elif seed.default is None:
        seed.problem = f"default {body!r} is not a constant integer expression (function-like or sizeof)"
    return seed


def _resolve_literal(name: str, hint: str, tree: Path, text: str, macros: dict[str, int]) -> Seed:
    want = re.sub(r"\s+", "", text.split(" (")[0]).rstrip(";")
    try:
        lines = (tree / hint).read_text(errors="replace").splitlines()
    except OSError:
        return Seed(name, "absent", problem=f"{hint} does not exist in this kernel's source")
    for i, line in enumerate(lines, 1):
        if want and want in re.sub(r"\s+", "", line):
            literals = [int(x) for x in _LITERAL.findall(line)]
            if not literals:
                break
            return Seed(name, "literal", hint, i, line.strip(), literals[-1],
                        uses=[Use(hint, i, line.strip())])
    return Seed(name, "absent", problem=f"expression not found in {hint} (absent in 6.12)")


def file_line_seed(spec: str, tree: Path) -> Seed:
    """A user seed ``path:line``: the last integer literal on that line."""
    path, _, num = spec.rpartition(":")
    if not num.isdigit() or not path:
        raise BadInputError(f"seed {spec!r}: expected NAME or path/to/file.c:LINE")
    try:
        text = (tree / path).read_text(errors="replace").splitlines()[int(num) - 1]
    except (OSError, IndexError):
        raise BadInputError(f"seed {spec!r}: no such line in the kernel source tree {tree}") from None
    literals = [int(x) for x in _LITERAL.findall(text)]
    if not literals:
        raise BadInputError(f"seed {spec!r}: line has no integer literal: {text.strip()!r}")
    return Seed(spec, "literal", path, int(num), text.strip(), literals[-1],
                uses=[Use(path, int(num), text.strip())])


def paper_seeds(tsv: Path) -> list[tuple[str, str, str]]:
    """(name, defined_in, default_source) rows of the paper's list."""
    try:
        rows = [r for r in csv.reader(tsv.read_text().splitlines(), delimiter="\t")
                if r and not r[0].startswith("#")]
    except OSError as e:
        raise BadInputError(f"seed list {tsv}: cannot read ({e.strerror})") from e
    return [(r[0], r[2], r[3]) for r in rows[1:] if len(r) >= 4]


def find_uses(seeds: list[Seed], tree: Path) -> None:
    """Fill ``uses`` of macro seeds with every line that names them (one grep for all)."""
    macros = {s.name: s for s in seeds if s.kind == "macro" and s.default is not None}
    if not macros:
        return
    pattern = r"\b(" + "|".join(sorted(macros)) + r")\b"
    out = subprocess.run(["grep", "-rnE", "--include=*.c", "--include=*.h", pattern, *SCAN_DIRS],
                         cwd=tree, capture_output=True, text=True, check=False).stdout
    word = re.compile(pattern)
    for row in out.splitlines():
        path, num, text = row.split(":", 2)
        if path.startswith("arch/") and not path.startswith("arch/x86"):
            continue
        if text.lstrip().startswith(("*", "/*", "//")):
            continue
        for name in set(word.findall(text)):
            seed = macros[name]
            if path == seed.file and int(num) == seed.line:
                continue
            seed.uses.append(Use(path, int(num), text.strip()))
