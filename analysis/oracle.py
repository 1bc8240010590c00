"""The oracle: recompile only the affected objects at two other values and diff.

For each object holding a site, the kernel's own compile command (recorded by kbuild in
``.<obj>.o.cmd``, with the shipped config and Debian's gcc 12) is re-run three times: at
the default and at two values whose encodings differ. The shared tree is never edited:
the changed definition and the compiled ``.c`` file are copied into a private overlay
directory searched before the tree. A site is confirmed when the instruction it names
changes exactly as its IV = f(V) predicts at both values; otherwise it is refuted and
dropped. Immediates that change where no site points are reported as uncovered.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from analysis import disasm, kernel_tree, objdiff, promote
from analysis.elfimage import Image
from analysis.find_sites import SeedSites
from analysis.kernel_files import KernelFiles
from analysis.seeds import Seed
from autotune.core import expr as exprs
from autotune.core.errors import EnvironmentProblem

_MASK = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFF_FFFF, "u64": (1 << 64) - 1}


@dataclass
class OracleReport:
    """What the recompiles said about one seed."""

    values: tuple[int, int] = (0, 0)
    objects: list[str] = field(default_factory=list)
    confirmed: int = 0
    discovered: int = 0
    refuted: list[str] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)
    seconds: float = 0.0
    problem: str = ""


def variant_values(v0: int, pow2: bool) -> tuple[int, int]:
    """Two values whose encodings differ from V0's and from each other's."""
    if pow2 or (v0 >= 2 and v0 & (v0 - 1) == 0):
        return v0 * 2, v0 * 4
    return 2 * v0 + 1, 3 * v0 + 2


def rewrite_line(seed: Seed, line: str, value: int) -> str:
    """The seed's definition (or literal) line with V0 replaced by ``value``.

    A multi-line ``#define`` becomes one line here; ``build_variants`` blanks the others.
    """
    if seed.kind == "const":
        return re.sub(r"=\s*[^;]+;", f"= ({value});", line, count=1)
    if seed.kind == "macro" and re.match(r"\s*#\s*define\s+\w+\s", line):
        body = seed.body
        if "unsigned" in body:
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


def build_variants(tree: Path, seed: Seed, obj: str, values: list[int], work: Path,
                   jobs: int) -> list[Path]:
    """Compile ``obj`` once per value (the first being V0) into private overlays."""
    cmd = compile_command(tree, obj)
    src = str(Path(obj).with_suffix(".c"))
    lines = (tree / seed.file).read_text(errors="replace").splitlines(keepends=True)

    def one(k: int, value: int) -> Path:
        overlay = work / f"v{k}"
        # the whole directory: quoted includes (unity builds such as kernel/sched's) must
        # resolve to the overlay's copies, not the tree's
        for rel_dir in {Path(src).parent, Path(seed.file).parent}:
            (overlay / rel_dir).mkdir(parents=True, exist_ok=True)
            for f in (tree / rel_dir).iterdir():
                if f.suffix in (".c", ".h") and f.is_file():
                    shutil.copyfile(f, overlay / rel_dir / f.name)
        changed = list(lines)
        changed[seed.line - 1] = rewrite_line(seed, lines[seed.line - 1], value)
        for n in seed.lines[1:]:  # continuation lines (kept as blank lines: line numbers hold)
            changed[n - 1] = "\n"
        (overlay / seed.file).write_text("".join(changed))
        out = overlay / "out.o"
        res = subprocess.run(_overlay_command(cmd, tree, obj, overlay, seed.file, out), cwd=tree,
                             capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise EnvironmentProblem(f"oracle compile of {obj} at {seed.name}={value} failed: "
                                     f"{res.stderr.strip()[-300:]}")
        return out

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, range(len(values)), values))


def verify_seed(kernel: KernelFiles, images: dict[str, Image], found: SeedSites, *,
                jobs: int) -> OracleReport:
    """Confirm or refute every site of one seed; refuted sites are dropped from ``found``."""
    import time

    t0 = time.monotonic()
    seed = found.seed
    report = OracleReport()
    live = [r for r in found.results if r.site is not None]
    if not live or seed.default is None:
        return report
    pow2 = any(k == "pow2" for r in live for k, _ in r.constraints)
    v1, v2 = variant_values(seed.default, pow2)
    report.values = (v1, v2)
    tree = kernel_tree.prepared_tree(kernel.source, kernel.config, jobs=jobs)
    by_obj: dict[str, list] = {}
    for r in live:
        cu = r.candidate.cu
        if not cu.endswith(".c"):
            r.site = None
            r.reason = f"its compile unit {cu or '?'} is not a C file: cannot recompile"
            continue
        by_obj.setdefault(cu[:-2] + ".o", []).append(r)
    with tempfile.TemporaryDirectory(prefix="oracle-", dir=kernel_tree.analysis_cache()) as tmp:
        for obj, results in sorted(by_obj.items()):
            report.objects.append(obj)
            work = Path(tmp) / obj.replace("/", "_")
            objs = build_variants(tree, seed, obj, [seed.default, v1, v2], work, jobs)
            builds = [objdiff.functions(o) for o in objs]
            changes, reshaped = objdiff.diff(builds)
            # a function whose instructions (not only immediates) differ computes something
            # with V that no site rewrites: 'x *= V-1' as 'lea (,%r,8); sub' at V=8, as
            # 'shl $4; sub' at V=16 (BLK_MQ_DISPATCH_BUSY_EWMA_WEIGHT)
            report.uncovered += [f"{obj}:{name} reshaped (V changes its instructions, not only "
                                 "immediates)" for name in reshaped]
            values = (seed.default, v1, v2)
            image = images[results[0].candidate.module]
            left = _match(results, changes, values, report, builds[0], image)
            for change in left:
                promoted = promote.promote(change, builds[0], image, values, obj)
                if promoted is None:
                    report.uncovered.append(f"{obj}:{change.describe()}")
                    continue
                promoted.site.verified = "oracle"  # type: ignore[union-attr]
                found.results.append(promoted)
                report.discovered += 1
    report.seconds = time.monotonic() - t0
    return report


def _predicts(expr_text: str, width: str, values: tuple[int, ...], imms: tuple[int, ...]) -> bool:
    e = exprs.parse(expr_text)
    mask = _MASK.get(width, (1 << 64) - 1)
    return all(e.evaluate(v, width) & mask == imm & mask for v, imm in zip(values, imms,
                                                                          strict=True))


def _match(results: list, changes: list[objdiff.Change], values: tuple[int, int, int],
           report: OracleReport, obj_funcs: dict[str, list[disasm.Insn]], image: Image
           ) -> list[objdiff.Change]:
    """Confirm or refute each result; return the changes no site accounts for.

    Each site is held to the object instruction aligned with its own (two ``mov $16`` in one
    function must not confirm each other's site); only when alignment fails does any
    matching change of the function count.
    """
    used: set[int] = set()
    for r in sorted(results, key=lambda r: r.candidate.insn.address):
        cand = r.candidate
        want = None
        if cand.function.name in obj_funcs:
            vm = disasm.disassemble(image.code(cand.function), cand.function.start)
            want = promote.obj_index(obj_funcs[cand.function.name], vm, cand.insn.address)
        hit = next((k for k, c in enumerate(changes) if k not in used
                    and c.function == cand.function.name and c.mnemonic == cand.insn.mnemonic
                    and (want is None or c.index == want)
                    and _predicts(cand.expr, cand.width, values, c.imms)), None)
        if hit is None:
            report.refuted.append(f"{cand.function.name}+{cand.insn.address - cand.function.start:#x}")
            r.reason = (f"refuted by the oracle: V={values[1]},{values[2]} does not "
                        f"change '{cand.insn.mnemonic} {cand.insn.op_str}' as {cand.expr}")
            r.site = None
            continue
        used.add(hit)
        assert r.site is not None
        r.site.verified = "oracle"
        report.confirmed += 1
    return [c for k, c in enumerate(changes) if k not in used]


def verify_all(kernel: KernelFiles, images: dict[str, Image], found: dict[str, SeedSites], *,
               jobs: int,
               progress: Callable[[int, int], None] | None = None) -> dict[str, OracleReport]:
    """Run the oracle for every seed that has sites."""
    names = [n for n, f in found.items() if any(r.site is not None for r in f.results)]
    reports: dict[str, OracleReport] = {}
    for k, name in enumerate(names):
        try:
            reports[name] = verify_seed(kernel, images, found[name], jobs=jobs)
        except EnvironmentProblem as e:
            reports[name] = OracleReport(problem=str(e))
        found[name].oracle = reports[name]
        if progress:
            progress(k + 1, len(names))
    return reports
