"""Render a catalog site into BPF C and compile it, cached by (template, site) hash.

The C lives in real template files (``templates/*.bpf.c``); a site contributes only a
block of ``#define`` lines computed here from its catalog data. Identical inputs give an
identical object name, so the lab image can carry precompiled objects and the guest,
which has no clang, finds them by hash.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from autotune.core import expr
from autotune.core.catalog import Knob, MemoryLocation, MemoryOperand, Site
from autotune.core.errors import BadInputError, EnvironmentProblem
from kernel_runtime.sie.registers import base_index, reg_index

TEMPLATES = {
    "register": "register.bpf.c",
    "memory": "memory.bpf.c",
    "flags": "flags.bpf.c",
    "save-recompute": "save_recompute.bpf.c",
}
SPAN_TEMPLATE = "span.bpf.c"
REFUSAL_TEMPLATE = "refusal.bpf.c"
COMMON_HEADER = "sie_common.bpf.h"
MAX_SITES = 32  # SIE_MAX_SITES in sie_common.bpf.h: entries of the per-site counter map
_BITS = {"u8": 8, "u16": 16, "u32": 32, "s32": 32, "u64": 64, "s64": 64}
_SIZE_WIDTH = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
_RECOMPUTE = {"shl": "<<", "shr": ">>", "and": "&", "or": "|", "xor": "^", "add": "+", "mul": "*"}
# flags_op -> (SIE_FLAGS_OF(s, iv), SIE_FLAGS_MASK): the flags the instruction sets from its
# input s and IV, and which of them it defines (and/or/xor/test leave AF undefined). A
# recompute_flags 'sub $imm' has IV = -imm (its recompute adds).
_LOGIC = ("sie_logic_flags(SIE_RECOMPUTE((s), (iv)))", "SIE_FLAGS_LOGIC")
_FLAGS_MODEL = {"cmp": ("sie_cmp_flags((s), (iv))", "SIE_FLAGS_ARITH"),
                "test": ("sie_logic_flags((s) & (iv))", "SIE_FLAGS_LOGIC"),
                "sub": ("sie_cmp_flags((s), -(iv))", "SIE_FLAGS_ARITH"),
                "add": ("sie_add_flags((s), (iv))", "SIE_FLAGS_ARITH"),
                "and": _LOGIC, "or": _LOGIC, "xor": _LOGIC}
_FLAGS_RECOMPUTE = {"sub": "add", "add": "add", "and": "and", "or": "or", "xor": "xor"}


@dataclass(frozen=True)
class Rendered:
    """The C source of one site program and the name its object is cached under."""

    template: str
    source: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:20]

    @property
    def object_name(self) -> str:
        return f"{self.digest}.o"


def template_text(name: str) -> str:
    return resources.files("kernel_runtime.sie").joinpath("templates").joinpath(name).read_text()


def _mask(width: str) -> int:
    return (1 << _BITS[width]) - 1


def site_width(site: Site) -> str:
    if isinstance(site.location, MemoryLocation):
        return _SIZE_WIDTH[site.location.size]
    return site.width


def _defines(knob: Knob, site: Site, index: int) -> dict[str, str]:
    width = site_width(site)
    mask = _mask(width)
    iv = expr.parse(site.expr)
    defs = {
        "SIE_SITE": str(index),
        "SIE_MASK": f"{mask:#x}ULL",
        "SIE_EXPECTED": f"{site.expected_default & mask:#x}ULL",
        "SIE_IV(v)": iv.to_c("(v)"),
    }
    where = f"knob {knob.name!r} site {site.function}+{site.probe_offset:#x}"
    if site.guard_offset is not None and site.synthesis not in ("register", "memory"):
        raise BadInputError(f"{where}: guard_offset is supported on register and memory sites only")
    if site.synthesis in ("register", "memory"):
        defs["SIE_GUARDED"] = "0" if site.guard_offset is None else "1"
    if site.synthesis == "register":
        if not isinstance(site.location, str) or site.location == "flags":
            raise BadInputError(f"{where}: a register site needs a register location")
        defs["SIE_REG"] = str(reg_index(site.location))
        defs["SIE_MERGE"] = "1" if _BITS[width] < 32 else "0"
    elif site.synthesis == "memory":
        if not isinstance(site.location, MemoryLocation):
            raise BadInputError(f"{where}: a memory site needs {{base_reg, disp, size}}")
        defs["SIE_BASE_REG"] = str(base_index(site.location.base_reg))
        defs["SIE_DISP"] = f"({site.location.disp})"
        defs["SIE_SIZE"] = str(site.location.size)
    elif site.synthesis == "flags":
        if site.compare_operand is None:
            raise BadInputError(f"{where}: a flags site needs compare_operand (the compared register)")
        defs |= _operand("SIE_OPERAND", site.compare_operand, where)
        defs |= _flags_model(site.flags_op or "cmp", width)
    else:
        defs.update(_save_recompute(knob, site, where, iv, width))
    return defs


def _save_recompute(knob: Knob, site: Site, where: str, iv: expr.Expr, width: str) -> dict[str, str]:
    """A register (or a 3-operand source saved instead) or a memory cell, recomputed."""
    if site.recompute_op is None or site.save_offset is None or site.location == "flags":
        raise BadInputError(f"{where}: a save-recompute site needs a register or memory location, "
                            "save_offset and recompute_op")
    if knob.default is None:
        raise BadInputError(f"knob {knob.name!r}: save-recompute needs the knob's default")
    saved = "(__u64)(s)"
    if site.recompute_op in ("shl", "shr", "sar", "sdiv_pow2"):
        _check_shift_counts(knob, iv, width, where)
        # a 32-bit 'shr' reads only the low half of the register: bits above it must not
        # shift down into the result
        saved = "((__u64)(s) & SIE_MASK)" if site.recompute_op == "shr" else saved
    if site.recompute_op == "sdiv_pow2":
        # C's signed x / 2**iv: a negative x is biased by 2**iv - 1 so the arithmetic shift
        # rounds toward zero, at the location's width
        x = f"((__s64)(__s{_BITS[width]})(s))"
        recompute = f"((__u64)(({x} + (({x} >> 63) & ((1LL << (iv)) - 1))) >> (iv)))"
    elif site.recompute_op == "sar":  # sign-preserving at the location's width
        recompute = f"((__u64)(((__s64)(__s{_BITS[width]})(s)) >> (iv)))"
    else:
        recompute = f"({saved} {_RECOMPUTE[site.recompute_op]} (__u64)(iv))"
    defs = {"SIE_RECOMPUTE(s, iv)": recompute,
            "SIE_EXPECTED_IV": f"{iv.evaluate(knob.default, width):#x}ULL"}
    op = site.flags_op or "sub"
    if site.recompute_flags and (_FLAGS_RECOMPUTE.get(op) != site.recompute_op
                                 or isinstance(site.location, MemoryLocation)):
        raise BadInputError(f"{where}: recompute_flags of '{op}' needs a register location and "
                            f"recompute_op {_FLAGS_RECOMPUTE.get(op)}, not {site.recompute_op}")
    if isinstance(site.location, MemoryLocation):
        if site.save_input is not None:
            raise BadInputError(f"{where}: a memory site saves its own cell, not {site.save_input}")
        return defs | {"SIE_IN_MEMORY": "1", "SIE_BASE_REG": str(base_index(site.location.base_reg)),
                       "SIE_DISP": f"({site.location.disp})", "SIE_SIZE": str(site.location.size)}
    defs |= ({"SIE_RECOMPUTE_FLAGS": "1"} | _flags_model(op, width) if site.recompute_flags
             else {"SIE_RECOMPUTE_FLAGS": "0"})
    return defs | _operand("SIE_INPUT", site.save_input or site.location, where) | {
        "SIE_IN_MEMORY": "0", "SIE_REG": str(reg_index(site.location)),
        "SIE_MERGE": "1" if _BITS[width] < 32 else "0"}


def _operand(prefix: str, operand: str | MemoryOperand, where: str) -> dict[str, str]:
    """An operand the program only reads (templates/sie_operand.bpf.h): ``PREFIX_REG`` (a
    register's pt_regs word), or ``PREFIX_ADDR(ctx)`` and ``PREFIX_SIZE`` (a memory operand's
    address, from the saved base and index registers, or for a rip-relative one from the
    function's start) with ``PREFIX_IN_MEMORY`` 1."""
    if isinstance(operand, str) and "[" in operand:
        raise BadInputError(f"{where}: operand {operand!r} is memory as text, from an analysis "
                            "older than memory operands: re-run 'autotune analyze --oracle --force'")
    if isinstance(operand, str):
        return {f"{prefix}_IN_MEMORY": "0", f"{prefix}_REG": str(reg_index(operand)),
                f"{prefix}_ADDR(ctx)": "0", f"{prefix}_SIZE": "8"}
    if operand.base_reg == "":
        raise BadInputError(f"{where}: an absolute operand is a global: tune the variable")
    if operand.base_reg == "rip":  # disp: the cell's offset from the function's start
        if operand.index_reg is not None:
            raise BadInputError(f"{where}: a rip-relative operand has no index register")
        return {f"{prefix}_IN_MEMORY": "1", f"{prefix}_REG": "0",
                f"{prefix}_ADDR(ctx)": f"(SIE_FUNCTION_START(ctx) + (__s64)({operand.disp}))",
                f"{prefix}_SIZE": str(operand.size)}
    addr = f"SIE_REGS_WORD(ctx, {base_index(operand.base_reg)})"
    if operand.index_reg is not None:
        addr += f" + SIE_REGS_WORD(ctx, {reg_index(operand.index_reg)}) * {operand.scale}"
    return {f"{prefix}_IN_MEMORY": "1", f"{prefix}_REG": "0",
            f"{prefix}_ADDR(ctx)": f"({addr} + (__s64)({operand.disp}))",
            f"{prefix}_SIZE": str(operand.size)}


def _flags_model(op: str, width: str) -> dict[str, str]:
    """The defines that compute the flags ``op`` sets at ``width`` (sie_common.bpf.h)."""
    flags, mask = _FLAGS_MODEL[op]
    return {"SIE_BITS": str(_BITS[width]), "SIE_FLAGS_OF(s, iv)": flags, "SIE_FLAGS_MASK": mask}


def _check_shift_counts(knob: Knob, iv: expr.Expr, width: str, where: str) -> None:
    """IV is a shift count here (``shl/shr $IV``, often log2(V)): every value the domain
    allows must keep it a valid count for the register, or the write would be undefined."""
    bits = _BITS[width]
    values = knob.domain.allowed_values() or [knob.domain.min, knob.domain.max]
    for v in values:
        try:
            count = iv.evaluate(v, "s64")
        except BadInputError as e:
            raise BadInputError(f"{where}: V={v} in the domain gives no shift count ({e}): "
                                "narrow the domain") from None
        if not 0 <= count < bits:
            raise BadInputError(f"{where}: V={v} in the domain gives shift count {count}, outside "
                                f"0..{bits - 1} for {width}: narrow the domain")


def _with_defines(defs: dict[str, str], template: str) -> str:
    """One self-contained source: the defines, then the template with its local headers
    (``#include "x.bpf.h"``) inlined, so the object's hash covers all of its C."""
    lines = [f"#define {name} {value}" for name, value in defs.items()]
    text = template_text(COMMON_HEADER) + template_text(template).replace(
        f'#include "{COMMON_HEADER}"\n', "")
    text = re.sub(r'#include "(\w+\.bpf\.h)"\n', lambda m: template_text(m.group(1)), text)
    return "/* rendered by kernel_runtime.sie.render: do not edit */\n" + "\n".join(lines) + \
        "\n" + text


def render_site(knob: Knob, site: Site, index: int) -> Rendered:
    """The complete C of the program for ``site`` (the ``index``-th of ``knob``)."""
    if not 0 <= index < MAX_SITES:
        raise BadInputError(f"knob {knob.name!r} has more than {MAX_SITES} sites: split it")
    template = TEMPLATES[site.synthesis]
    return Rendered(template, _with_defines(_defines(knob, site, index), template))


_NO_SITE = {"SIE_SITE": "0", "SIE_MASK": "0ULL", "SIE_EXPECTED": "0ULL", "SIE_IV(v)": "(v)"}


def render_span() -> Rendered:
    """The safe-span enter/exit programs (per-task transitions) of any knob."""
    return Rendered(SPAN_TEMPLATE, _with_defines(_NO_SITE, SPAN_TEMPLATE))


def render_refusal() -> Rendered:
    """The least-privilege self-test program (writes the module must refuse)."""
    return Rendered(REFUSAL_TEMPLATE, _with_defines(_NO_SITE, REFUSAL_TEMPLATE))


def vmlinux_header(btf: Path, cache: Path) -> Path:
    """``vmlinux.h`` dumped from a kernel's BTF (a BTF-carrying ELF or /sys/kernel/btf/vmlinux)."""
    bpftool = shutil.which("bpftool") or shutil.which("bpftool", path="/usr/sbin:/sbin")
    if bpftool is None:
        raise EnvironmentProblem("bpftool not found: apt-get install -y bpftool")
    out = cache / "vmlinux.h"
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([bpftool, "btf", "dump", "file", str(btf), "format", "c"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvironmentProblem(f"bpftool could not read BTF from {btf}: {proc.stderr.strip()}")
        tmp = out.with_suffix(".tmp")
        tmp.write_text(proc.stdout)
        tmp.replace(out)
    return out


def compile_object(rendered: Rendered, *, btf: Path, cache: Path) -> Path:
    """Compile (once) with clang -target bpf, CO-RE against ``btf``; return the object path."""
    obj = cache / rendered.object_name
    if obj.exists():
        return obj
    clang = shutil.which("clang")
    if clang is None:
        raise EnvironmentProblem(f"no precompiled {obj.name} and no clang here: "
                                 "apt-get install -y clang, or rebuild the lab image")
    header = vmlinux_header(btf, cache)
    with tempfile.TemporaryDirectory(prefix="sie-build-") as tmp:
        src = Path(tmp) / f"{rendered.digest}.bpf.c"
        src.write_text(rendered.source)
        out = Path(tmp) / obj.name
        proc = subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_x86",
                               f"-I{header.parent}", "-c", str(src), "-o", str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise EnvironmentProblem(f"clang failed on {rendered.template}: {proc.stderr.strip()[:2000]}")
        out.replace(obj)
    return obj
