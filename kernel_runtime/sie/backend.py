"""``SieBackend``: the Backend that makes catalog perf-consts live through SIE.

Raw mechanism only (the controller validates domains and journals): ``load`` attaches a
knob's site programs, ``set`` is one map update, ``restore`` puts back the previous value
of the same scope, ``status`` reports the per-site counters and raises an alert when a
site's self-check found the location not holding the default's value.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from autotune.core.catalog import Catalog, Knob
from autotune.core.errors import AutotuneError, BadInputError, EnvironmentProblem
from kernel_runtime.backend import GLOBAL, Backend, KnobState, Scope
from kernel_runtime.features import probe_features
from kernel_runtime.sie import artifacts, module, runtime
from kernel_runtime.sie.render import Rendered, compile_object


class SieBackend(Backend):
    """SIE knobs of one kernel build, through the sie_write module and pinned BPF programs."""

    kind = "sie"

    def __init__(self, *, catalog: Catalog, mode: runtime.Mode = "immediate") -> None:
        self.catalog = catalog
        self.mode: runtime.Mode = mode
        self.release = catalog.kernel.release
        self._loaded: dict[str, Knob] = {}
        self._syms: runtime.Kallsyms | None = None

    @classmethod
    def for_running_kernel(cls) -> SieBackend | str:
        """The backend for this kernel, or the reason SIE cannot work here."""
        features = probe_features()
        if not features.sie_ready:
            return features.explain()
        try:
            catalog = artifacts.catalog_for(platform.release())
        except AutotuneError as e:
            return f"SIE catalog unusable: {e}"
        if catalog is None:
            return f"no SIE catalog for kernel {platform.release()}: run 'autotune analyze'"
        return cls(catalog=catalog)

    def syms(self) -> runtime.Kallsyms:
        if self._syms is None:
            self._syms = runtime.Kallsyms.read()
        return self._syms

    def unavailable_reason(self, knob: Knob) -> str | None:
        if knob.name not in {k.name for k in self.catalog.knobs}:
            return f"not in the SIE catalog of {self.release}"
        try:
            for site in knob.sites:
                self.syms().address(site.function)
        except EnvironmentProblem as e:
            return str(e)
        return None

    def object_for(self, rendered: Rendered) -> Path:
        """A compiled object for ``rendered``: shipped by the lab image, else built here."""
        shipped = artifacts.find(self.release, f"bpf/{rendered.object_name}")
        if shipped:
            return shipped
        return compile_object(rendered, btf=artifacts.RUNNING_BTF,
                              cache=artifacts.build_dir(self.release) / "bpf")

    def module_path(self) -> Path:
        shipped = artifacts.find(self.release, f"{module.NAME}.ko")
        if shipped:
            return shipped
        headers = Path(f"/lib/modules/{self.release}/build")
        if not headers.exists():
            raise EnvironmentProblem(f"no {module.NAME}.ko for {self.release} and no headers at {headers}: "
                                     f"apt-get install -y linux-headers-{self.release}")
        return module.build(headers, artifacts.build_dir(self.release))

    def load(self, knob: Knob) -> None:
        """Attach the knob unless some process already did (in the same mode)."""
        module.load(self.module_path())
        if not runtime.is_loaded(knob.name):
            runtime.attach(knob, mode=self.mode, object_for=self.object_for, syms=self.syms())
        elif runtime.control(knob.name)["mode"] != runtime.MODES[self.mode]:
            raise BadInputError(f"knob {knob.name!r} is loaded in another transition mode: "
                                f"'autotune knob unload {knob.name}' first, then load it --mode {self.mode}")
        self._loaded[knob.name] = knob

    def _require(self, knob: Knob) -> None:
        if not runtime.is_loaded(knob.name):
            self.load(knob)  # another process unloaded it: attach again before writing

    def read(self, knob: Knob, scope: Scope = GLOBAL) -> Any:
        self._require(knob)
        return runtime.get_value(knob.name, scope)

    def set(self, knob: Knob, value: int, scope: Scope = GLOBAL) -> None:
        self._require(knob)
        runtime.set_value(knob.name, int(value), scope)

    def restore(self, knob: Knob, token: Any, scope: Scope = GLOBAL) -> None:
        if runtime.is_loaded(knob.name):
            runtime.set_value(knob.name, None if token is None else int(token), scope)

    def unload(self) -> None:
        for knob in list(self._loaded.values()):
            runtime.detach(knob, self.syms())
            del self._loaded[knob.name]

    def unload_knob(self, knob: Knob) -> None:
        """Detach one knob, whichever process loaded it."""
        runtime.detach(knob, self.syms())
        self._loaded.pop(knob.name, None)

    def status(self) -> list[KnobState]:
        states: list[KnobState] = []
        for knob in self.catalog.knobs:
            if not runtime.is_loaded(knob.name):
                continue
            ctl = runtime.control(knob.name)
            sites = runtime.counters(knob.name, len(knob.sites))
            addresses = [self.syms().address(s.function) + s.probe_offset for s in knob.sites]
            counters: dict[str, int] = {"epoch": ctl["epoch"]}
            for i, (site, opt) in enumerate(zip(sites, runtime.optimized(addresses), strict=True)):
                counters.update({f"site{i}.{k}": v for k, v in site.items()})
                if opt is not None:
                    counters[f"site{i}.optimized"] = int(opt)
            bad = [f"{s.function}+{s.probe_offset:#x}" for s, c in zip(knob.sites, sites, strict=True)
                   if c["mismatches"]]
            alert = (f"self-check mismatch at {', '.join(bad)}: knob disabled, nothing written"
                     if ctl["disabled"] else None)
            states.append(KnobState(name=knob.name, backend=self.kind,
                                    value=runtime.get_value(knob.name, GLOBAL),
                                    counters=counters, alert=alert))
        return states
