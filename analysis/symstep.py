"""Symbolic execution of a critical span with angr: where IV goes after the seed.

Only the one function's bytes are loaded, as a blob at its real address (milliseconds,
against two minutes and 1.3 GB for the whole vmlinux). The seed's result is replaced by a
symbolic ``IV`` and the straight-line code after it is stepped one instruction at a time;
breakpoints record the first instruction that reads IV, whether IV (or a value derived from
it) becomes a memory address or a shift amount, and how far derived values stay live
(the safe span). Stepping never leaves the function: a call, a return or a jump out of its
bounds (a tail call) with IV live ends the span. IV leaves the function (``Flow.leaves``)
when it is stored or an exit carries it in a register the other side reads (the ABI:
arguments, a return value); ``leaves`` follows every path to prove it stays inside.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any

MAX_STEPS = 48
PATH_BUDGET = 400  # instructions stepped over all paths by ``leaves``
GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15")
_SHIFTS = {"__lshift__", "__rshift__", "LShR"}
# registers a callee may read as arguments or clobber; the others it preserves
_CALLER_SAVED = frozenset({"rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"})


@dataclass
class Flow:
    """What stepping after the seed found."""

    first_reader: int | None = None      # address of the first instruction reading IV
    live_until: int | None = None        # address after which no register holds IV
    address_use: int | None = None       # an instruction that used IV in an address
    shift_use: int | None = None         # an instruction that shifted by IV
    mask_use: bool = False               # IV was an AND mask
    escaped: bool = False                # IV live across a call or branch: span unknown
    stored_at: list[int] = field(default_factory=list)  # stores of IV to memory
    notes: list[str] = field(default_factory=list)
    leaves: str = ""                     # how IV left the function: "" when it provably did not
    leaves_at: int | None = None         # the instruction where it left
    path: list[int] = field(default_factory=list)  # addresses stepped, in order

    def span(self) -> tuple[int, int]:
        """[lowest, highest] address stepped: a backward jump can put the end before the start."""
        return min(self.path), max(self.path)


def _has_iv(ast: Any) -> bool:
    return any(v.startswith("IV") for v in getattr(ast, "variables", ()))


def _walk(ast: Any, flow: Flow, addr: int) -> None:
    for node in ast.children_asts() if hasattr(ast, "children_asts") else ():
        if node.op in _SHIFTS and len(node.args) == 2 and _has_iv(node.args[1]):
            flow.shift_use = flow.shift_use or addr
        if node.op == "__and__" and any(_has_iv(a) for a in node.args):
            flow.mask_use = True


def import_angr() -> Any:
    """angr, imported quietly: its import logs an ERROR per process when the optional
    unicorn engine is missing (we never use it), which drowned the analysis progress."""
    logging.getLogger("angr.state_plugins.unicorn_engine").setLevel(logging.CRITICAL)
    import angr

    logging.getLogger("angr").setLevel(logging.ERROR)
    logging.getLogger("cle").setLevel(logging.ERROR)
    return angr


def _project(code: bytes, base: int) -> Any:
    angr = import_angr()
    return angr.Project(io.BytesIO(code), auto_load_libs=False,
                        main_opts={"backend": "blob", "arch": "amd64", "base_addr": base,
                                   "entry_point": base})


def full_register(name: str) -> tuple[str, int]:
    """(64-bit register, width in bits) of an x86 register name."""
    import archinfo

    arch = archinfo.ArchAMD64()
    offset, size = arch.registers[name]
    for full in GPRS:
        if arch.registers[full][0] == offset:
            return full, size * 8
    raise ValueError(f"register {name} is not a general-purpose register")


def _seeded(code: bytes, base: int, start: int, reg: str) -> tuple[Any, Any]:
    """The project and a state at ``start`` whose ``reg`` holds the symbolic IV."""
    angr = import_angr()
    import claripy

    proj = _project(code, base)
    state = proj.factory.blank_state(
        addr=start, add_options={angr.options.SYMBOL_FILL_UNCONSTRAINED_REGISTERS,
                                 angr.options.SYMBOL_FILL_UNCONSTRAINED_MEMORY})
    full, bits = full_register(reg)
    iv = claripy.BVS("IV", bits)
    setattr(state.regs, full, iv.zero_extend(64 - bits) if bits < 64 else iv)
    return proj, state


def step_after(code: bytes, base: int, start: int, reg: str, stop: int) -> Flow:
    """Run from ``start`` with ``reg`` = symbolic IV until IV is dead, consumed or ``stop``."""
    angr = import_angr()

    flow = Flow()
    proj, state = _seeded(code, base, start, reg)
    current = {"addr": start}

    def on_reg_read(st: Any) -> None:
        if flow.first_reader is None and _has_iv(st.inspect.reg_read_expr):
            flow.first_reader = current["addr"]

    def on_mem(st: Any) -> None:
        address = st.inspect.mem_read_address if st.inspect.mem_read_address is not None \
            else st.inspect.mem_write_address
        if address is not None and _has_iv(address):
            flow.address_use = flow.address_use or current["addr"]
        if st.inspect.mem_write_expr is not None and _has_iv(st.inspect.mem_write_expr):
            flow.stored_at.append(current["addr"])

    state.inspect.b("reg_read", when=angr.BP_AFTER, action=on_reg_read)
    state.inspect.b("mem_read", when=angr.BP_BEFORE, action=on_mem)
    state.inspect.b("mem_write", when=angr.BP_BEFORE, action=on_mem)
    for _ in range(MAX_STEPS):
        addr = state.addr
        if not base <= addr < stop:
            break
        current["addr"] = addr
        flow.path.append(addr)
        try:
            succ = proj.factory.successors(state, num_inst=1)
        except Exception as e:  # angr raises many types for code it cannot lift
            flow.notes.append(f"stepping stopped at {addr:#x}: {type(e).__name__}")
            flow.escaped = True
            break
        # a 'ret' pops a symbolic address: its one successor is unconstrained, not flat
        nxt = succ.flat_successors or succ.unconstrained_successors
        live = [r for r in GPRS if nxt and _has_iv(getattr(nxt[0].regs, r))]
        for r in live:
            _walk(getattr(nxt[0].regs, r), flow, addr)
        if flow.stored_at and not flow.leaves:
            flow.leaves, flow.leaves_at = "stored to memory", flow.stored_at[0]
        if not live and not _flags_live(nxt):
            flow.live_until = addr
            break
        exit_kind, how = _exit(nxt, base, stop, frozenset(live))
        if exit_kind or len(nxt) != 1:
            flow.escaped = True
            if how and not flow.leaves:
                flow.leaves, flow.leaves_at = how, addr
            flow.notes.append(f"IV {how or 'live across ' + (exit_kind or 'a branch')} at {addr:#x}")
            break
        state = nxt[0]
    else:
        flow.escaped = True
        flow.notes.append(f"IV still live after {MAX_STEPS} instructions")
    return flow


def leaves(code: bytes, base: int, start: int, reg: str, stop: int,
           budget: int = PATH_BUDGET) -> tuple[str, int | None]:
    """How IV leaves the function on any path from ``start`` (both sides of every branch):
    ``(how, address)``; ``("", None)`` when it dies inside on every path, which proves no
    other function sees it; ``("not followed", address)`` when ``budget`` steps run out.

    A taint walk: a state is (address, registers holding IV, whether the flags do); one seen
    before adds nothing (the same instructions derive the same registers), so loops end.
    """
    angr = import_angr()

    proj, state = _seeded(code, base, start, reg)
    stored: list[bool] = []

    def on_write(st: Any) -> None:
        if st.inspect.mem_write_expr is not None and _has_iv(st.inspect.mem_write_expr):
            stored.append(True)

    state.inspect.b("mem_write", when=angr.BP_BEFORE, action=on_write)
    todo, seen = [state], set()
    for _ in range(budget):
        if not todo:
            return "", None
        st = todo.pop()
        addr = st.addr
        try:
            succ = proj.factory.successors(st, num_inst=1)
        except Exception:  # angr raises many types for code it cannot lift
            return "not followed", addr
        if stored:
            return "stored to memory", addr
        nxt = succ.flat_successors or succ.unconstrained_successors
        if succ.unconstrained_successors and succ.flat_successors:
            return "not followed", addr
        for s in nxt:
            live = frozenset(r for r in GPRS if _has_iv(getattr(s.regs, r)))
            exit_kind, how = _exit([s], base, stop, live)
            if how:
                return how, addr
            flags = _flags_live([s])
            if exit_kind == "a call":  # only callee-saved registers hold IV: not the callee's input
                s = _after_call(proj, st)
                live = frozenset(r for r in GPRS if _has_iv(getattr(s.regs, r)))
                flags = False  # a call clobbers the flags
            elif exit_kind:
                continue  # a return or tail jump carrying no IV: it dies here
            if not (live or flags):
                continue  # IV died on this path
            if (key := (s.addr, live, flags)) not in seen:
                seen.add(key)
                todo.append(s)
    return ("not followed", todo[-1].addr) if todo else ("", None)


def _after_call(proj: Any, before: Any) -> Any:
    """The state at a call's return address: the callee preserved the callee-saved
    registers and clobbered the others (the System V ABI the kernel follows)."""
    import claripy

    after = before.copy()
    after.regs.ip = before.addr + proj.factory.block(before.addr, num_inst=1).size
    for r in _CALLER_SAVED:
        setattr(after.regs, r, claripy.BVS(f"clobbered_{r}", 64))
    return after


def _exit(states: list[Any], base: int, stop: int, live: frozenset[str]) -> tuple[str, str]:
    """(exit, how IV leaves by it) for the one successor: ("", "") when it stays inside the
    function; how is "" when the exit carries no IV (the ABI: a callee or tail callee reads
    only caller-saved registers, a caller only rax and rdx; the others hold the caller's values)."""
    if len(states) != 1:
        return "", ""
    kind = states[0].history.jumpkind
    if kind == "Ijk_Call":
        return "a call", "passed to a call" if live & _CALLER_SAVED else ""
    if kind == "Ijk_Ret":
        return "a return", "returned" if live & {"rax", "rdx"} else ""
    if kind != "Ijk_Boring":
        return f"a {kind} exit", f"live at a {kind} exit" if live else ""
    if not base <= states[0].addr < stop:
        return "a tail jump", (f"live at a jump out of the function to {states[0].addr:#x} "
                               "(a tail call)" if live & _CALLER_SAVED else "")
    return "", ""


def _flags_live(states: list[Any]) -> bool:
    if len(states) != 1:
        return False
    st = states[0]
    return any(_has_iv(getattr(st.regs, r)) for r in ("cc_dep1", "cc_dep2"))


def prove_product(code: bytes, base: int, start: int, count: int, dest: str, source: str,
                  factor: int, bits: int) -> bool:
    """Whether the ``count`` instructions from ``start`` leave ``dest`` equal to ``source`` *
    ``factor`` (at ``bits``, zero-extended to the whole register) whatever every register
    holds: the proof that a strength-reduced chain (``lea (x,x,4); shl $8``) is that multiply."""
    angr = import_angr()
    import claripy

    proj = _project(code, base)
    state = proj.factory.blank_state(
        addr=start, add_options={angr.options.SYMBOL_FILL_UNCONSTRAINED_REGISTERS,
                                 angr.options.SYMBOL_FILL_UNCONSTRAINED_MEMORY})
    x = claripy.BVS("x", 64)
    setattr(state.regs, full_register(source)[0], x)
    try:
        succ = proj.factory.successors(state, num_inst=count)
    except Exception:  # angr raises many types for code it cannot lift
        return False
    if len(succ.flat_successors) != 1:
        return False
    out = getattr(succ.flat_successors[0].regs, full_register(dest)[0])
    want = x * factor
    if bits < 64:
        want = want[bits - 1:0].zero_extend(64 - bits)
    return not state.solver.satisfiable(extra_constraints=[out != want])
