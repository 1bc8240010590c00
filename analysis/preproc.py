"""Which lines of a source file the build's configuration compiles out.

A constant is often defined twice under ``#ifdef CONFIG_...`` (``SCHED_NR_MIGRATE_BREAK`` is
8 under PREEMPT_RT, 32 otherwise): the seed must be the definition the shipped build used,
or its default is wrong and the oracle rewrites a line the compiler never reads. Only
conditions over config options are judged (``#ifdef``, ``#ifndef``, ``defined()``,
``IS_ENABLED()``, ``IS_BUILTIN()``, ``!``, ``&&``, ``||``); a branch under any other
condition counts as live, so an unknown condition never hides a definition.
"""

from __future__ import annotations

import re
from pathlib import Path

_DIRECTIVE = re.compile(r"\s*#\s*(ifdef|ifndef|if|elif|else|endif)\b(.*)")
_OPTION = re.compile(r"(?:defined\s*\(?|IS_ENABLED\s*\(|IS_BUILTIN\s*\(|IS_REACHABLE\s*\()"
                     r"\s*(CONFIG_\w+)\s*\)?")


def enabled_options(config: Path) -> frozenset[str]:
    """The options a kernel .config sets to y or m."""
    try:
        text = config.read_text()
    except OSError:
        return frozenset()
    return frozenset(m.group(1) for m in re.finditer(r"^(CONFIG_\w+)=[ym]$", text, re.M))


def _judge(cond: str, enabled: frozenset[str]) -> bool | None:
    """True/False when ``cond`` only tests config options, else None."""
    cond = re.sub(r"/\*.*?\*/|//.*$", " ", cond)
    text = _OPTION.sub(lambda m: " 1 " if m.group(1) in enabled else " 0 ", cond)
    tokens = re.findall(r"&&|\|\||!|\(|\)|\S+", text)
    if any(t not in ("0", "1", "&&", "||", "!", "(", ")") for t in tokens):
        return None
    pos = 0

    def expr() -> bool:  # or-chain of and-chains of unary
        nonlocal pos
        value = term()
        while pos < len(tokens) and tokens[pos] == "||":
            pos += 1
            value = term() or value
        return value

    def term() -> bool:
        nonlocal pos
        value = unary()
        while pos < len(tokens) and tokens[pos] == "&&":
            pos += 1
            value = unary() and value
        return value

    def unary() -> bool:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "!":
            return not unary()
        if tok == "(":
            value = expr()
            pos += 1
            return value
        return tok == "1"

    try:
        value = expr()
    except IndexError:
        return None
    return value if pos == len(tokens) else None


def dead_lines(lines: list[str], enabled: frozenset[str]) -> set[int]:
    """0-based indexes of the lines inside a branch the configuration compiles out."""
    dead: set[int] = set()
    # per open #if: (this branch live: True/False/None, some earlier branch was taken)
    stack: list[tuple[bool | None, bool | None]] = []
    for i, text in enumerate(lines):
        m = _DIRECTIVE.match(text)
        if m:
            kind, rest = m.group(1), m.group(2)
            if kind in ("ifdef", "ifndef"):
                opt = rest.split()[0] if rest.split() else ""
                live = (opt in enabled) if opt.startswith("CONFIG_") else None
                live = (not live) if (kind == "ifndef" and live is not None) else live
                stack.append((live, live))
            elif kind == "if":
                live = _judge(rest, enabled)
                stack.append((live, live))
            elif stack and kind == "elif":
                _, taken = stack[-1]
                cond = _judge(rest, enabled)
                live = False if taken is True else (None if taken is None or cond is None
                                                    else cond)
                stack[-1] = (live, True if taken is True or cond is True else
                             None if taken is None or cond is None else False)
            elif stack and kind == "else":
                _, taken = stack[-1]
                stack[-1] = (None if taken is None else not taken, True)
            elif stack and kind == "endif":
                stack.pop()
            continue
        if any(live is False for live, _ in stack):
            dead.add(i)
    return dead
