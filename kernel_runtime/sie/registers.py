"""x86-64 register names mapped to their word index in the kernel's ``struct pt_regs``.

The BPF programs read and the module writes saved registers by this index, so the
mapping is the one place that must match the kernel's layout (arch/x86/include/asm/ptrace.h).
"""

from __future__ import annotations

from autotune.core.errors import BadInputError

# struct pt_regs word order: r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di
_ORDER = ("r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx",
          "si", "di")
_LEGACY = {"ax": "a", "bx": "b", "cx": "c", "dx": "d"}
# The stack pointer's word: a kprobe on x86-64 saves the interrupted rsp there (the int3 frame
# holds it; an optimized probe adjusts its copy to match), so it may address memory, read-only.
SP_INDEX = 19


def _canonical(name: str) -> str:
    n = name.lower().lstrip("%")
    if n.startswith("r") and n[1:].rstrip("dwb").isdigit():
        return n.rstrip("dwb") if n[-1] in "dwb" else n
    for word, letter in _LEGACY.items():
        if n in (f"r{word}", f"e{word}", word, f"{letter}l", f"{letter}h"):
            return word
    for word in ("bp", "si", "di"):
        if n in (f"r{word}", f"e{word}", word, f"{word}l"):
            return word
    return n


def reg_index(name: str) -> int:
    """pt_regs word index of a general-purpose register (any width alias: eax, r12d ...)."""
    canon = _canonical(name)
    if canon not in _ORDER:
        raise BadInputError(f"register {name!r} cannot be written by SIE: use a general-purpose "
                            f"register ({', '.join(_ORDER)}); sp and ip are never writable")
    return _ORDER.index(canon)


def base_index(name: str) -> int:
    """pt_regs word index of a register that addresses memory (a base register): any
    general-purpose register, or the stack pointer (locals, arguments pushed for a call)."""
    if name.lower().lstrip("%") in ("rsp", "esp", "sp"):
        return SP_INDEX
    return reg_index(name)
