"""Seeds: which constants to catalog, where 6.12 defines them, their default V0 and their uses.

The paper's list names Linux 6.14 constants; each is looked up in the analysed tree (absent
ones are reported, not guessed). A seed is a macro (``#define NAME value``, continuation lines
included), a ``static const`` scalar with a constant initializer (GCC folds it into
immediates exactly like a macro, so it is analysed as one), a static variable that is not
const (it lives in memory: tuned through memory, not SIE, reported as unsupported), or a
literal inside a source line (``file:line`` or an expression from the list, such as
``ca->delay_min >> 3``).
"""

from __future__ import annotations

import ast
import csv
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from analysis import preproc
from analysis.typesizes import TypeSizes
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
    # what the code holds at this use, as an expression of V: ``msecs_to_jiffies(NAME)`` of a
    # constant folds at compile time, so its immediates encode jiffies, not milliseconds
    unit: str = "V"


@dataclass
class Seed:
    """One constant to catalog, resolved against the analysed source tree."""

    name: str
    kind: str  # "macro" | "const" (static const scalar) | "variable" | "literal" | "absent"
    file: str = ""
    line: int = 0
    body: str = ""
    default: int | None = None
    problem: str = ""
    uses: list[Use] = field(default_factory=list)
    last_line: int = 0  # a definition's last line (continuation lines); 0: same as ``line``
    jiffies: str = ""  # msecs_to_jiffies(V) at this build's HZ ("" when not expressible)

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}" if self.file else ""

    @property
    def lines(self) -> range:
        """The definition's line numbers (a multi-line ``#define`` spans several)."""
        return range(self.line, max(self.line, self.last_line) + 1)


def msecs_to_jiffies_expr(hz: int) -> str | None:
    """msecs_to_jiffies(V) at this CONFIG_HZ in the expression language (it rounds up), or None
    when it needs a division the language lacks (1000/HZ not a power of two)."""
    if 1000 % hz or (step := 1000 // hz) & (step - 1):
        return None
    shift = step.bit_length() - 1
    return "V" if step == 1 else f"(V+{step - 1}) >> {shift}"


def known_macros(hz: int) -> dict[str, int]:
    """Units the defaults are written in, for this build's CONFIG_HZ."""
    nsec = 1_000_000_000
    return {"HZ": hz, "NSEC_PER_SEC": nsec, "NSEC_PER_MSEC": 1_000_000, "NSEC_PER_USEC": 1000,
            "USEC_PER_MSEC": 1000, "USEC_PER_SEC": 1_000_000, "MSEC_PER_SEC": 1000,
            "PAGE_SIZE": 4096, "SCHED_CAPACITY_SCALE": 1024, "HPAGE_PMD_NR": 512,
            "TICK_NSEC": (nsec + hz // 2) // hz}


SizeOf = Callable[[str, str], "int | None"]  # ("struct" | "union" | "", type name) -> bytes
_SIZEOF = re.compile(r"\bsizeof\s*\(\s*(?:(struct|union)\s+)?(\w+)\s*\)")


def evaluate(text: str, macros: dict[str, int], sizeof: SizeOf | None = None) -> int | None:
    """The value of a C constant expression, or None when it is not one we can fold.

    ``sizeof(struct X)`` folds when ``sizeof`` knows the type (from the build's DWARF).
    """
    msecs = re.fullmatch(r"\s*msecs_to_jiffies\((\d+)\)\s*", text)
    if msecs:
        return -(-int(msecs.group(1)) * macros["HZ"] // 1000)
    if sizeof is not None and _SIZEOF.search(text):
        sizes = {m.group(0): sizeof(m.group(1) or "", m.group(2)) for m in _SIZEOF.finditer(text)}
        if any(v is None for v in sizes.values()):
            return None
        text = _SIZEOF.sub(lambda m: str(sizes[m.group(0)]), text)
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


_COMMENT = re.compile(r"/\*.*?\*/|//.*$", re.M)


def _logical(lines: list[str], i: int) -> tuple[str, int]:
    """Line ``i`` (0-based) joined with its backslash continuations, comments dropped;
    and the index of its last physical line."""
    parts = [lines[i]]
    while parts[-1].rstrip().endswith("\\") and i + 1 < len(lines):
        parts[-1] = parts[-1].rstrip()[:-1]
        i += 1
        parts.append(lines[i])
    return " ".join(_COMMENT.sub(" ", " ".join(parts)).split()), i


_DEFINE = re.compile(r"#\s*define\s+(\w+)(\(.*?\))?(?:\s+(.*))?$")


def _file_defines(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for i, text in enumerate(lines):
        if _DEFINE.match(text.lstrip()):
            m = _DEFINE.match(_logical(lines, i)[0])
            if m and not m.group(2) and m.group(3):
                out.setdefault(m.group(1), m.group(3))
    return out


def _locate(tree: Path, name: str, hint: str, enabled: frozenset[str] | None = None
            ) -> tuple[str, int, int, str, str] | None:
    """(file, line, last line, kind, body) of NAME's definition, preferring the hinted file;
    with the build's ``enabled`` config options, skipping definitions it compiles out."""
    start = re.compile(r"^\s*#\s*define\s+" + re.escape(name) + r"\b")
    variable = re.compile(r"^\s*static\s+((?:const\s+)?)([\w\s]*?)\b" + re.escape(name)
                          + r"\s*=\s*([^;]+);")

    def scan(rel: str) -> tuple[str, int, int, str, str] | None:
        try:
            lines = (tree / rel).read_text(errors="replace").splitlines()
        except OSError:
            return None
        dead = preproc.dead_lines(lines, enabled) if enabled else set()
        for i, text in enumerate(lines):
            if i in dead:
                continue
            if start.match(text):
                joined, last = _logical(lines, i)
                m = _DEFINE.match(joined)
                if m and m.group(1) == name:
                    kind = "function-macro" if m.group(2) else "macro"
                    return rel, i + 1, last + 1, kind, m.group(3) or ""
            m = variable.match(text)
            if m:
                # a const scalar (not a pointer or array) is folded into the code like a macro
                const = bool(m.group(1)) and "*" not in m.group(2) and "[" not in text.split("=")[0]
                return rel, i + 1, i + 1, "const" if const else "variable", m.group(3).strip()
        return None

    hit = scan(hint) if hint else None
    if hit:
        return hit
    found = subprocess.run(["grep", "-rlE", r"#\s*define\s+" + name + r"\b|^\s*static\s.*\b"
                            + name + r"\s*=", *SCAN_DIRS],
                           cwd=tree, capture_output=True, text=True, check=False).stdout
    for rel in found.split():
        hit = scan(rel)
        if hit:
            return hit
    return None


def resolve(name: str, hint: str, tree: Path, hz: int, literal_text: str = "",
            enabled: frozenset[str] | None = None, sizes: TypeSizes | None = None) -> Seed:
    """Find one seed in the tree. ``literal_text``: an expression seed's source text;
    ``enabled``: the build's config options (a definition under a false #ifdef is skipped);
    ``sizes``: type sizes from the build's DWARF, for defaults written with sizeof."""
    macros = known_macros(hz)
    if literal_text or not re.fullmatch(r"\w+", name):
        return _resolve_literal(name, hint, tree, literal_text or name, macros)
    found = _locate(tree, name, hint, enabled)
    if found is None:
        return Seed(name, "absent", problem="not defined in this kernel's source (absent in 6.12)")
    rel, line, last, kind, body = found
    if kind == "function-macro":
        # the margin of a comparison macro such as fits_capacity(): its non-scale literal
        lits = [int(x) for x in _LITERAL.findall(body) if int(x) != 1024]
        return Seed(name, "macro", rel, line, body, lits[0] if lits else None,
                    problem="" if lits else f"function-like macro {body!r} has no literal",
                    last_line=last)
    macros |= _folded_defines(tree / rel, name, macros)
    sizeof = None if sizes is None else (lambda kind, t: sizes.size(kind, t, rel))
    seed = Seed(name, kind, rel, line, body, evaluate(body, macros, sizeof), last_line=last,
                jiffies=msecs_to_jiffies_expr(hz) or "")
    if kind == "variable":
        seed.problem = "a static variable that is not const (it lives in memory, the code " \
                       "loads it): tune it as memory, not as a compiled-in constant"
    elif seed.default is None:
        seed.problem = f"default {body!r} is not a constant integer expression: {_why_not(body)}"
    return seed


def _folded_defines(path: Path, skip: str, macros: dict[str, int]) -> dict[str, int]:
    """The file's own object-like macros that fold, each after the ones it names."""
    bodies = {k: b for k, b in _file_defines(path).items() if k != skip}
    known = dict(macros)
    for _ in range(4):  # macros naming macros: a few rounds settle every chain in practice
        more = {k: v for k, b in bodies.items() if k not in known
                and (v := evaluate(b, known)) is not None}
        if not more:
            break
        known |= more
    return {k: v for k, v in known.items() if k not in macros}


def _why_not(body: str) -> str:
    if "sizeof" in body:
        return "it depends on sizeof(...), a type layout the build's DWARF did not give"
    if names := [n for n in re.findall(r"\b[a-z_]\w*\b", body) if n not in ("unsigned", "long", "int")]:
        return (f"it reads {names[0]!r}, a run-time variable (a sysctl or per-call value): "
                "nothing compiled in holds the value, tune that variable instead")
    return "function-like or an unknown macro"


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
    """Fill ``uses`` of macro and static const seeds with every line that names them."""
    for seed in seeds:
        if seed.kind == "const" and seed.default is not None:
            _const_uses(seed, tree)
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
            if path == seed.file and int(num) in seed.lines:
                continue
            seed.uses.append(_use(seed, path, int(num), text))


def _use(seed: Seed, path: str, num: int, text: str) -> Use:
    in_ms = re.search(r"msecs_to_jiffies\(\s*" + re.escape(seed.name) + r"\s*\)", text)
    return Use(path, num, text.strip(), seed.jiffies if in_ms and seed.jiffies else "V")


def _const_uses(seed: Seed, tree: Path) -> None:
    """A ``static`` constant is visible only in its own file; ``->name``/``.name`` there are
    struct members of the same name (bfq copies its defaults into ``bfqd->bfq_back_max``)."""
    word = re.compile(r"(?<![\w.>])" + re.escape(seed.name) + r"\b")
    lines = (tree / seed.file).read_text(errors="replace").splitlines()
    for i, text in enumerate(lines, 1):
        code = _COMMENT.sub(" ", text)
        if i != seed.line and not text.lstrip().startswith("*") and word.search(code):
            seed.uses.append(_use(seed, seed.file, i, text))
