"""The knob catalog schema: the contract between analysis, kernel_runtime and autotune.

One JSON document per kernel build (keyed by build-id). A knob is either an SIE perf-const
(sites found by analysis) or an existing tunable (sysctl/debugfs). Validation is eager and
strict (``extra="forbid"``) because a wrong field here becomes a wrong kernel write later.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autotune.core import expr
from autotune.core.documents import read_document, validate_document
from autotune.core.errors import BadInputError
from autotune.core.kernel import KernelInfo

CATALOG_VERSION = 1

Category = Literal["threshold", "interval", "batch", "scale", "flag", "size"]
BackendKind = Literal["sie", "sysctl", "debugfs"]
FlagsOp = Literal["cmp", "test", "add", "sub", "and", "or", "xor"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Constraint(_Strict):
    """A rule the kernel's own code imposes on a value, with the reason it exists."""

    kind: Literal["pow2", "multiple_of", "nonzero"]
    value: int | None = None
    reason: str

    def allows(self, v: int) -> bool:
        if self.kind == "pow2":
            return v > 0 and v & (v - 1) == 0
        if self.kind == "multiple_of":
            return self.value is not None and v % self.value == 0
        return v != 0

    def describe(self) -> str:
        return f"multiple_of {self.value}" if self.kind == "multiple_of" else self.kind


class Domain(_Strict):
    """The safe search range of a knob: a prior we supply, enforced before any write."""

    min: int
    max: int
    log: bool = False
    constraints: list[Constraint] = Field(default_factory=list)
    choices: list[int] | None = None

    @model_validator(mode="after")
    def _check(self) -> Domain:
        if self.min > self.max:
            raise ValueError(f"domain min {self.min} > max {self.max}")
        if self.log and self.min <= 0:
            raise ValueError("a log domain needs min > 0")
        return self

    def allows_value(self, v: int) -> bool:
        """``check`` as a predicate, for filtering rather than refusing."""
        return (self.min <= v <= self.max and (self.choices is None or v in self.choices)
                and all(c.allows(v) for c in self.constraints))

    def check(self, knob: str, v: int) -> None:
        """Raise BadInputError unless ``v`` is allowed (before anything is written)."""
        if not self.min <= v <= self.max:
            raise BadInputError(f"knob {knob!r}: value {v} outside domain [{self.min}, {self.max}]")
        if self.choices is not None and v not in self.choices:
            raise BadInputError(f"knob {knob!r}: value {v} not one of {self.choices}")
        for c in self.constraints:
            if not c.allows(v):
                raise BadInputError(f"knob {knob!r}: value {v} violates {c.describe()} ({c.reason})")

    def allowed_values(self) -> list[int] | None:
        """The explicit value set when constraints make the range discrete, else None."""
        if self.choices is not None:
            return list(self.choices)
        if any(c.kind in ("pow2", "multiple_of") for c in self.constraints):
            if self.max - self.min > 1 << 20:
                lo = max(self.min, 1)
                vals = [1 << k for k in range(int(math.log2(lo)), int(math.log2(self.max)) + 1)]
            else:
                vals = list(range(self.min, self.max + 1))
            return [v for v in vals if all(c.allows(v) for c in self.constraints)
                    and self.min <= v <= self.max]
        return None


class MemoryLocation(_Strict):
    """A cell SIE may write: DISP(%base), ``size`` bytes (base may be rsp, never rip)."""

    base_reg: str
    disp: int
    size: Literal[1, 2, 4, 8]


class MemoryOperand(MemoryLocation):
    """A memory operand SIE only reads (a compare's, a multiply's input): it may be indexed,
    DISP(%base, %index, scale), since no write ever has to be registered at its address.
    base_reg 'rip' (a vmlinux global): ``disp`` is the cell's offset from the function's
    start, which the program knows as its probe address minus the probe's offset."""

    index_reg: str | None = None
    scale: Literal[1, 2, 4, 8] = 1


class SafeSpan(_Strict):
    function: str
    start: int
    end: int
    conservative: bool = False


class Site(_Strict):
    """One critical span of an SIE knob in the running kernel's code."""

    function: str
    module: str | None = None  # the loadable module holding ``function``; None: vmlinux
    cs_start: int
    cs_end: int
    probe_offset: int
    probe_offsets: list[int] = Field(default_factory=list)
    location: str | MemoryLocation | Literal["flags"]
    width: Literal["u8", "u16", "u32", "u64", "s32", "s64"] = "u64"
    expr: str
    synthesis: Literal["register", "memory", "flags", "save-recompute"]
    expected_default: int
    save_offset: int | None = None
    compare_operand: str | MemoryOperand | None = None  # register, or 'cmp $IV, mem's memory
    # sdiv_pow2: C's signed x / 2**IV (a negative x rounds toward zero), GCC's sar idiom
    # sar: an arithmetic (sign-preserving) right shift at the site's width
    recompute_op: Literal["shl", "shr", "sar", "and", "or", "xor", "add", "mul",
                          "sdiv_pow2"] | None = None
    # the register the save probe reads when it is not the location itself: the source of a
    # 3-operand 'lea d(%src), %dst' or 'imul $i, %src, %dst', or the memory source of
    # 'imul $i, mem, %dst' (a memory location saves its cell)
    save_input: str | MemoryOperand | None = None
    # a save-recompute seed whose flags a later instruction reads: the apply probe (on the
    # next instruction) also rewrites the flags as the seed (flags_op) sets them with f(V)
    recompute_flags: bool = False
    # the instruction whose arithmetic flags the site reproduces: a flags site's compare
    # ('cmp op, IV' or 'test op, IV'), or a recompute_flags seed ('add/sub/and/or/xor r, IV');
    # None in catalogs written before it: 'cmp' and 'sub', the only kinds those had
    flags_op: FlagsOp | None = None
    guard_offset: int | None = None  # a probe only the constant's own path passes before the site
    safe_spans: list[SafeSpan] = Field(default_factory=list)
    verified: Literal["oracle", "emulation", "none"] = "none"
    source: str | None = None

    @field_validator("expr")
    @classmethod
    def _parse_expr(cls, v: str) -> str:
        expr.parse(v)
        return v

    @model_validator(mode="after")
    def _check_flags_op(self) -> Site:
        kinds: tuple[FlagsOp, ...] = (("cmp", "test") if self.synthesis == "flags" else
                                      ("add", "sub", "and", "or", "xor") if self.recompute_flags
                                      else ())
        if self.flags_op is None and kinds:
            self.flags_op = "cmp" if self.synthesis == "flags" else "sub"
        if self.flags_op is not None and self.flags_op not in kinds:
            raise ValueError(f"flags_op {self.flags_op!r} does not fit a {self.synthesis} site "
                             f"(recompute_flags {self.recompute_flags}): allowed {kinds or 'none'}")
        return self


class Knob(_Strict):
    """A tunable: its meaning, its safe domain and how it becomes live."""

    name: str
    subsystem: str
    category: Category
    default: int | None = None
    unit: str = ""
    description: str = ""
    domain: Domain
    backend: BackendKind
    source: str | None = None
    path: str | None = None
    sites: list[Site] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_backend(self) -> Knob:
        if self.backend == "sie" and not self.sites:
            raise ValueError(f"sie knob {self.name!r} has no sites")
        if self.backend in ("sysctl", "debugfs") and not self.path:
            raise ValueError(f"{self.backend} knob {self.name!r} has no path")
        return self


class UnsupportedKnob(_Strict):
    """A constant analysis found but will never load, with the reason."""

    name: str
    reason: str
    source: str | None = None


class Catalog(_Strict):
    version: int = CATALOG_VERSION
    kernel: KernelInfo
    knobs: list[Knob] = Field(default_factory=list)
    unsupported: list[UnsupportedKnob] = Field(default_factory=list)

    def knob(self, name: str) -> Knob:
        for k in self.knobs:
            if k.name == name:
                return k
        known = ", ".join(k.name for k in self.knobs) or "none"
        raise BadInputError(f"unknown knob {name!r}: this catalog has {known}")


def load_catalog(path: Path) -> Catalog:
    """Read and validate a catalog file, turning every problem into one line."""
    fix = "regenerate it with 'autotune analyze'"
    data = read_document(path, kind="catalog", fmt="json", fix=fix)
    cat = validate_document(Catalog, data, path, kind="catalog", fix=fix)
    if cat.version != CATALOG_VERSION:
        raise BadInputError(f"catalog {path}: version {cat.version}, expected {CATALOG_VERSION}; {fix}")
    return cat
