"""The restricted expression language for IV = f(V).

Analysis emits these, the SIE runtime renders them to BPF C and evaluates them to check
``expected_default``. They are parsed into a tiny AST (never ``eval``ed) so a malformed or
hostile catalog cannot run code, and so every value can be range-checked before it reaches
a kernel register.

Grammar (C precedence, lowest first)::

    expr   := or
    or     := xor ('|' xor)*
    xor    := and ('^' and)*
    and    := shift ('&' shift)*
    shift  := sum (('<<' | '>>') sum)*
    sum    := prod (('+' | '-') prod)*
    prod   := unary ('*' unary | '/' INT)*
    unary  := ('-' | '~') unary | atom
    atom   := 'V' | INT | '(' expr ')' | WIDTH '(' expr ')' | 'log2' '(' expr ')'
    WIDTH  := 'u8' | 'u16' | 'u32' | 'u64' | 's32' | 's64'

``x / N`` divides x, read as an unsigned 64-bit value, by a positive integer literal: a time
constant divided into another unit (``BFQ_MIN_TT / NSEC_PER_USEC``) is compiled as V/1000.
Only a literal divisor is allowed (no division by zero, and BPF has unsigned division).

``log2(x)`` is the kernel's ``ilog2``: the floor of the base-2 logarithm of a positive x. GCC
turns ``x / V`` and ``x * V`` for a power-of-two V into a shift by ilog2(V), so a knob whose
site is such a shift carries a ``pow2`` constraint and the exact value is log2(V).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from autotune.core.errors import BadInputError

WIDTHS: dict[str, tuple[int, bool]] = {
    "u8": (8, False),
    "u16": (16, False),
    "u32": (32, False),
    "u64": (64, False),
    "s32": (32, True),
    "s64": (64, True),
}
_C_TYPES = {"u8": "__u8", "u16": "__u16", "u32": "__u32", "u64": "__u64", "s32": "__s32", "s64": "__s64"}
_TOKEN = re.compile(r"\s*(0x[0-9a-fA-F]+|\d+|<<|>>|[A-Za-z_][A-Za-z0-9_]*|[-+*/&|^~()])")
_BINARY_LEVELS: list[tuple[str, ...]] = [("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"), ("*", "/")]


def wrap(value: int, width: str) -> int:
    """Reduce ``value`` to the given machine width (two's complement for signed widths)."""
    bits, signed = WIDTHS[width]
    value &= (1 << bits) - 1
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


@dataclass(frozen=True)
class Node:
    """One AST node: ``op`` is 'V', 'int', a unary/binary operator, or a width name."""

    op: str
    args: tuple[Node, ...] = ()
    value: int = 0


class Expr:
    """A parsed IV = f(V) expression with evaluation and C rendering."""

    def __init__(self, text: str) -> None:
        self.text = text
        tokens = _tokenize(text)
        parser = _Parser(tokens, text)
        self.root = parser.parse()

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def evaluate(self, v: int, width: str = "u64") -> int:
        """IV for a given V, wrapped to ``width`` (the location's width)."""
        return wrap(_eval(self.root, v), width)

    def to_c(self, var: str = "v") -> str:
        """Render as a C expression over the 64-bit variable ``var`` (for BPF templates)."""
        return _c(self.root, var)


def parse(text: str) -> Expr:
    """Parse ``text``; raise BadInputError with the position of the problem."""
    return Expr(text)


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        m = _TOKEN.match(stripped, pos)
        if not m:
            raise BadInputError(f"expression {text!r}: unexpected character at {pos}: {stripped[pos]!r}")
        tokens.append(m.group(1))
        pos = m.end()
    if not tokens:
        raise BadInputError("expression is empty: write at least 'V'")
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens = tokens
        self.i = 0
        self.text = text

    def fail(self, why: str) -> BadInputError:
        return BadInputError(f"expression {self.text!r}: {why} (allowed: V, integers, + - * / << >> & | ^ ~, "
                             f"parentheses, {'/'.join(WIDTHS)}(...), log2(...))")

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise self.fail("ends too early")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.binary(0)
        if self.peek() is not None:
            raise self.fail(f"unexpected {self.peek()!r}")
        return node

    def binary(self, level: int) -> Node:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while self.peek() in _BINARY_LEVELS[level]:
            op = self.take()
            if op == "/":
                tok = self.take()
                if not tok[0].isdigit() or int(tok, 0) <= 0:
                    raise self.fail(f"'/' needs a positive integer literal divisor, not {tok!r}")
                node = Node(op, (node, Node("int", value=int(tok, 0))))
                continue
            node = Node(op, (node, self.binary(level + 1)))
        return node

    def unary(self) -> Node:
        tok = self.peek()
        if tok in ("-", "~"):
            self.take()
            return Node("neg" if tok == "-" else "~", (self.unary(),))
        return self.atom()

    def atom(self) -> Node:
        tok = self.take()
        if tok == "V":
            return Node("V")
        if tok[0].isdigit():
            return Node("int", value=int(tok, 0))
        if tok == "(":
            node = self.binary(0)
            if self.take() != ")":
                raise self.fail("missing ')'")
            return node
        if tok in WIDTHS:
            if self.take() != "(":
                raise self.fail(f"{tok} needs parentheses")
            inner = self.binary(0)
            if self.take() != ")":
                raise self.fail("missing ')'")
            return Node(tok, (inner,))
        if tok == "log2":
            if self.take() != "(":
                raise self.fail("log2 needs parentheses")
            inner = self.binary(0)
            if self.take() != ")":
                raise self.fail("missing ')'")
            return Node("log2", (inner,))
        raise self.fail(f"unknown name {tok!r}")


def _eval(node: Node, v: int) -> int:
    op, a = node.op, node.args
    if op == "V":
        return v
    if op == "int":
        return node.value
    if op == "neg":
        return -_eval(a[0], v)
    if op == "~":
        return ~_eval(a[0], v)
    if op in WIDTHS:
        return wrap(_eval(a[0], v), op)
    if op == "log2":
        x = _eval(a[0], v)
        if x <= 0:
            raise BadInputError(f"log2 of {x}: only positive values have one")
        return x.bit_length() - 1
    x, y = _eval(a[0], v), _eval(a[1], v)
    if op in ("<<", ">>") and not 0 <= y < 64:
        raise BadInputError(f"shift by {y} is outside 0..63")
    result: int = {
        "+": lambda: x + y,
        "-": lambda: x - y,
        "*": lambda: x * y,
        "/": lambda: (x & ((1 << 64) - 1)) // y,
        "<<": lambda: x << y,
        ">>": lambda: x >> y,
        "&": lambda: x & y,
        "|": lambda: x | y,
        "^": lambda: x ^ y,
    }[op]()
    return result


def _c(node: Node, var: str) -> str:
    op, a = node.op, node.args
    if op == "V":
        return f"((__s64){var})"
    if op == "int":
        return f"((__s64){node.value}LL)"
    if op == "neg":
        return f"(-{_c(a[0], var)})"
    if op == "~":
        return f"(~{_c(a[0], var)})"
    if op in WIDTHS:
        return f"((__s64)({_C_TYPES[op]}){_c(a[0], var)})"
    if op == "log2":
        return _c_log2(_c(a[0], var))
    if op == "/":
        return f"((__s64)((__u64){_c(a[0], var)} / {a[1].value}ULL))"
    return f"({_c(a[0], var)} {op} {_c(a[1], var)})"


def _c_log2(x: str) -> str:
    """Floor log2 as one branch-free C expression: BPF has no count-leading-zeros instruction.

    The sum counts the k in 1..63 with x >= 2^k (x read as unsigned); clang folds it into a
    short compare-and-add chain the verifier accepts. x <= 0 gives 0, never an unbounded
    shift: the domain's pow2 constraint keeps V positive before any write.
    """
    terms = " + ".join(f"(__s64)((__u64){x} >= {1 << k}ULL)" for k in range(1, 64))
    return f"({terms})"
