"""A ctypes binding of the few libbpf 1.x calls the SIE loader needs.

Why ctypes and not a C helper or bcc: libbpf is the library that resolves module kfuncs
and attaches kprobes at function+offset (bpftool 7.1 cannot, bcc 0.26 cannot call module
kfuncs); binding it from Python needs no compiler in the lab guest and no extra binary to
build, version and ship. Only stable, size-prefixed entry points are used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

from autotune.core.errors import EnvironmentProblem

_LIB_DIRS = [Path("/opt/autotune/sie/lib"), Path("/usr/lib/x86_64-linux-gnu")]


class _KprobeOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("bpf_cookie", ctypes.c_uint64),
                ("offset", ctypes.c_size_t), ("retprobe", ctypes.c_bool)]


def _load() -> ctypes.CDLL:
    names = [str(d / "libbpf.so.1") for d in _LIB_DIRS if (d / "libbpf.so.1").exists()]
    found = ctypes.util.find_library("bpf")
    if found:
        names.append(found)
    for name in names:
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
        _declare(lib)
        return lib
    raise EnvironmentProblem("libbpf.so.1 not found: apt-get install -y libbpf1")


def _declare(lib: ctypes.CDLL) -> None:
    p, c = ctypes.c_void_p, ctypes.c_char_p
    sigs: dict[str, tuple[object, list[object]]] = {
        "bpf_object__open_file": (p, [c, p]),
        "bpf_object__load": (ctypes.c_int, [p]),
        "bpf_object__close": (None, [p]),
        "bpf_object__next_map": (p, [p, p]),
        "bpf_object__find_program_by_name": (p, [p, c]),
        "bpf_map__name": (c, [p]),
        "bpf_map__set_pin_path": (ctypes.c_int, [p, c]),
        "bpf_program__attach_kprobe_opts": (p, [p, c, ctypes.POINTER(_KprobeOpts)]),
        "bpf_link__pin": (ctypes.c_int, [p, c]),
        "bpf_link__destroy": (ctypes.c_int, [p]),
        "libbpf_get_error": (ctypes.c_long, [p]),
        "bpf_obj_get": (ctypes.c_int, [c]),
        "bpf_map_update_elem": (ctypes.c_int, [ctypes.c_int, p, p, ctypes.c_uint64]),
        "bpf_map_lookup_elem": (ctypes.c_int, [ctypes.c_int, p, p]),
        "bpf_map_delete_elem": (ctypes.c_int, [ctypes.c_int, p]),
        "bpf_map_get_next_key": (ctypes.c_int, [ctypes.c_int, p, p]),
        "libbpf_num_possible_cpus": (ctypes.c_int, []),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def _fail(what: str) -> EnvironmentProblem:
    err = ctypes.get_errno()
    return EnvironmentProblem(f"{what}: {os.strerror(err) if err else 'libbpf error'} "
                              "(run as root; check 'dmesg' for the verifier's reason)")


class KprobeRefused(EnvironmentProblem):
    """The kernel refused a kprobe at this address (EINVAL / EILSEQ): an equivalent offset
    may still be taken (``kernel_runtime.sie.probes`` says why this one was not)."""

    def __init__(self, where: str, err: int) -> None:
        super().__init__(f"the kernel refused a kprobe at {where}: {os.strerror(err)}")
        self.errno = err


class BpfObject:
    """One compiled object: opened, its maps pinned by name under ``pin_dir``, loaded."""

    def __init__(self, path: Path, pin_dir: Path) -> None:
        self.path = path
        self._obj = lib().bpf_object__open_file(str(path).encode(), None)
        if not self._obj or lib().libbpf_get_error(self._obj):
            self._obj = None
            raise _fail(f"cannot open BPF object {path}")
        m = lib().bpf_object__next_map(self._obj, None)
        while m:
            name = lib().bpf_map__name(m).decode()
            if name.startswith("sie_") and not name.startswith("sie_saved"):
                lib().bpf_map__set_pin_path(m, str(pin_dir / name).encode())
            m = lib().bpf_object__next_map(self._obj, m)
        if lib().bpf_object__load(self._obj):
            self.close()
            raise _fail(f"the kernel refused BPF object {path.name}")

    def attach_kprobe(self, program: str, function: str, offset: int, link_path: Path,
                      *, retprobe: bool = False) -> None:
        """Attach ``program`` at ``function+offset`` and pin the link so it outlives us. The
        attach cookie is ``offset``: a program finds its function's start as its probe address
        minus it (a rip-relative operand's cell is at a fixed offset from there)."""
        prog = lib().bpf_object__find_program_by_name(self._obj, program.encode())
        if not prog:
            raise EnvironmentProblem(f"{self.path.name} has no program {program!r}")
        opts = _KprobeOpts(sz=ctypes.sizeof(_KprobeOpts), bpf_cookie=offset, offset=offset,
                           retprobe=retprobe)
        link = lib().bpf_program__attach_kprobe_opts(prog, function.encode(), ctypes.byref(opts))
        if not link or lib().libbpf_get_error(link):
            if ctypes.get_errno() in (errno.EINVAL, errno.EILSEQ):
                raise KprobeRefused(f"{function}+{offset:#x}", ctypes.get_errno())
            raise _fail(f"cannot attach a kprobe at {function}+{offset:#x}")
        try:
            if lib().bpf_link__pin(link, str(link_path).encode()):
                raise _fail(f"cannot pin {link_path}")
        finally:
            lib().bpf_link__destroy(link)  # the pin (if made) keeps the probe attached

    def close(self) -> None:
        if self._obj:
            lib().bpf_object__close(self._obj)
            self._obj = None


class PinnedMap:
    """A map pinned in bpffs, used through its fd: what a value change needs, no reload."""

    def __init__(self, path: Path) -> None:
        self.fd = lib().bpf_obj_get(str(path).encode())
        if self.fd < 0:
            raise _fail(f"cannot open pinned map {path}")

    def update(self, key: bytes, value: bytes) -> None:
        if lib().bpf_map_update_elem(self.fd, key, value, 0):
            raise _fail("map update failed")

    def lookup(self, key: bytes, size: int) -> bytes | None:
        buf = ctypes.create_string_buffer(size)
        if lib().bpf_map_lookup_elem(self.fd, key, buf):
            return None
        return buf.raw

    def delete(self, key: bytes) -> None:
        lib().bpf_map_delete_elem(self.fd, key)

    def keys(self, size: int) -> list[bytes]:
        """Every key (of ``size`` bytes), in the map's order."""
        out: list[bytes] = []
        cur = ctypes.create_string_buffer(size)
        prev = None
        while not lib().bpf_map_get_next_key(self.fd, prev, cur):
            out.append(cur.raw)
            prev = ctypes.create_string_buffer(cur.raw, size)
        return out

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def possible_cpus() -> int:
    n: int = lib().libbpf_num_possible_cpus()
    return max(n, 1)
