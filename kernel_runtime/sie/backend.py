"""``SieBackend``: the Backend that makes catalog perf-consts live through SIE.

Raw mechanism only (the controller validates domains and journals): ``load`` attaches a
knob's site programs, ``set`` is one map update, ``restore`` puts back the previous value
of the same scope, ``status`` reports the per-site counters and raises an alert when a
site's self-check found the location not holding the default's value.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autotune.core.catalog import Catalog, Knob
from autotune.core.errors import AutotuneError, BadInputError, EnvironmentProblem
from autotune.core.kernel import running_kernel
from kernel_runtime.backend import GLOBAL, Backend, KnobState, Scope
from kernel_runtime.features import probe_features
from kernel_runtime.sie import artifacts, module, probes, runtime, values
from kernel_runtime.sie.knobset import CatalogChoice, KnobSet, load_knob_set, unverified_reason
from kernel_runtime.sie.pins import is_loaded
from kernel_runtime.sie.render import Rendered, compile_object, render_site


class SieBackend(Backend):
    """SIE knobs of one kernel build, through the sie_write module and pinned BPF programs.

    ``catalog`` is the trusted hand catalog (lab-tested, exempt from the oracle rule);
    ``extra`` are analysis knobs, and any knob handed in (over the agent, say) is judged by
    its own sites: every one must be oracle-verified unless ``allow_unverified``.
    """

    kind = "sie"

    def __init__(self, *, catalog: Catalog, extra: Sequence[Knob] = (),
                 allow_unverified: bool = False, mode: runtime.Mode | None = None) -> None:
        self.catalog = catalog
        self.extra = {k.name: k for k in extra}
        self.allow_unverified = allow_unverified
        # None: a knob another process loaded keeps its mode (so 'knob set' works on a knob
        # 'knob load --mode global' attached); a knob attached here is immediate
        self.mode: runtime.Mode | None = mode
        self.release = catalog.kernel.release
        self._loaded: dict[str, Knob] = {}
        self._syms: runtime.Kallsyms | None = None

    @classmethod
    def for_running_kernel(cls, knobs: KnobSet | None = None, *,
                           allow_unverified: bool = False) -> SieBackend | str:
        """The backend for this kernel, or the reason SIE cannot work here."""
        features = probe_features()
        if not features.sie_ready:
            return features.explain()
        if knobs is None:
            try:
                knobs = load_knob_set(running_kernel(), CatalogChoice())
            except AutotuneError as e:
                return f"SIE catalog unusable: {e}"
        return cls(catalog=knobs.trusted_catalog(), extra=knobs.extras(),
                   allow_unverified=allow_unverified)

    def syms(self) -> runtime.Kallsyms:
        if self._syms is None:
            self._syms = runtime.Kallsyms.read()
        return self._syms

    def trusted(self, knob: Knob) -> bool:
        return any(k == knob for k in self.catalog.knobs)

    def refusal(self, knob: Knob) -> str | None:
        """Why the oracle rule forbids loading ``knob`` here, or None."""
        if self.allow_unverified or self.trusted(knob):
            return None
        return unverified_reason(knob)

    def skipped(self, knob: Knob) -> dict[int, str]:
        """Sites (index -> module) in modules this kernel has not loaded: never attached."""
        loaded = runtime.loaded_modules()
        return {i: s.module for i, s in enumerate(knob.sites)
                if s.module and runtime.module_name(s.module) not in loaded}

    def skipped_note(self, knob: Knob) -> str | None:
        skip = self.skipped(knob)
        if not skip:
            return None
        return (f"{len(skip)} of {len(knob.sites)} sites not attached: module(s) "
                f"{', '.join(sorted(set(skip.values())))} not loaded")

    def unavailable_reason(self, knob: Knob) -> str | None:
        refused = self.refusal(knob)
        if refused:
            return refused
        skip = self.skipped(knob)
        if len(skip) == len(knob.sites):
            mods = sorted(set(skip.values()))
            return (f"module(s) {', '.join(mods)} not loaded, and every site is there: "
                    f"'modprobe {mods[0]}' first (a lab image loads none)")
        for i, site in enumerate(knob.sites):
            if i in skip:
                continue
            try:
                render_site(knob, site, i)  # a site no template can express never loads
                base = self.syms().address(site.function, site.module)
            except BadInputError as e:
                return f"site {site.function}+{site.probe_offset:#x} cannot be rendered: {e}"
            except EnvironmentProblem as e:
                return str(e)
            # a loaded knob's probes were taken; a trial beside them would only add churn
            refused = None if is_loaded(knob.name) else probes.unusable_reason(site, base)
            if refused:
                return refused
        return None

    def object_for(self, rendered: Rendered) -> Path:
        """A compiled object for ``rendered``: shipped by the lab image, else built here."""
        shipped = artifacts.find(self.release, f"bpf/{rendered.object_name}")
        if shipped:
            return shipped
        return compile_object(rendered, btf=artifacts.RUNNING_BTF,
                              cache=artifacts.build_dir(self.release) / "bpf")

    def missing_objects(self, knobs: Sequence[Knob]) -> list[Rendered]:
        """Site programs ``load`` would need for ``knobs`` that no search directory holds
        (sites in modules not loaded are never attached, so never needed)."""
        out: dict[str, Rendered] = {}
        for knob in knobs:
            skip = self.skipped(knob)
            for i, site in enumerate(knob.sites):
                rendered = render_site(knob, site, i)
                if i not in skip and not artifacts.find(self.release, f"bpf/{rendered.object_name}"):
                    out[rendered.object_name] = rendered
        return list(out.values())

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
        """Attach the knob unless some process already did (in the same mode, when this
        backend was given one).

        Refused before anything is attached when the oracle rule forbids it or no site's
        module is loaded; sites in modules not loaded stay unattached (``status`` says so).
        """
        refused = self.refusal(knob)
        if refused:
            raise BadInputError(f"knob {knob.name!r}: {refused}")
        skip = self.skipped(knob)
        if len(skip) == len(knob.sites):
            raise EnvironmentProblem(f"knob {knob.name!r}: {self.unavailable_reason(knob)}")
        module.load(self.module_path())
        if not is_loaded(knob.name):
            runtime.attach(knob, mode=self.mode or "immediate", object_for=self.object_for,
                           syms=self.syms(), skip=frozenset(skip))
        elif self.mode is not None and values.control(knob.name).mode != runtime.MODES[self.mode]:
            raise BadInputError(f"knob {knob.name!r} is loaded in another transition mode: "
                                f"'autotune knob unload {knob.name}' first, then load it --mode {self.mode}")
        self._loaded[knob.name] = knob

    def moved_note(self, knob: Knob) -> str | None:
        """Sites attached at an equivalent offset because the kernel refused the catalog's."""
        moved = [f"{s.function}+{s.probe_offset:#x} at +{used:#x}"
                 for i, used in sorted(runtime.attached_offsets(knob).items())
                 if used != (s := knob.sites[i]).probe_offset]
        return f"attached at equivalent offsets: {', '.join(moved)}" if moved else None

    def _require(self, knob: Knob) -> None:
        if not is_loaded(knob.name):
            self.load(knob)  # another process unloaded it: attach again before writing

    def read(self, knob: Knob, scope: Scope = GLOBAL) -> Any:
        self._require(knob)
        return values.get_value(knob.name, scope)

    def set(self, knob: Knob, value: int, scope: Scope = GLOBAL) -> None:
        self._require(knob)
        values.set_value(knob.name, int(value), scope)

    def restore(self, knob: Knob, token: Any, scope: Scope = GLOBAL) -> None:
        if is_loaded(knob.name):
            values.set_value(knob.name, None if token is None else int(token), scope,
                              restoring=True)

    def unload(self) -> None:
        for knob in list(self._loaded.values()):
            runtime.detach(knob, self.syms())
            del self._loaded[knob.name]

    def unload_knob(self, knob: Knob) -> None:
        """Detach one knob, whichever process loaded it."""
        runtime.detach(knob, self.syms())
        self._loaded.pop(knob.name, None)

    def known(self) -> list[Knob]:
        """Every knob this backend may report on: its catalogs' and those loaded here."""
        out: dict[str, Knob] = {k.name: k for k in self.catalog.knobs}
        for k in [*self.extra.values(), *self._loaded.values()]:
            out.setdefault(k.name, k)
        return list(out.values())

    def status(self) -> list[KnobState]:
        """Per-site counters (and the offset used when an equivalent one was taken), the
        global mode's live generation and pending change, and alerts: a self-check
        mismatch (``disabled`` is read from the map only BPF writes), late modules."""
        states: list[KnobState] = []
        loaded_mods = runtime.loaded_modules()
        for knob in self.known():
            if not is_loaded(knob.name):
                continue
            state = values.live(knob.name)
            sites = runtime.counters(knob.name, len(knob.sites))
            used = runtime.attached_offsets(knob)
            base = {i: self.syms().address(knob.sites[i].function, knob.sites[i].module) for i in used}
            addresses = [base[i] + used[i] if i in used else 0 for i in range(len(knob.sites))]
            counters = values.transition_counters(knob.name, state)
            for i, (site, opt) in enumerate(zip(sites, runtime.optimized(addresses), strict=True)):
                if i not in used:
                    counters[f"site{i}.attached"] = 0
                    continue
                counters.update({f"site{i}.{k}": v for k, v in site.items()})
                if used[i] != knob.sites[i].probe_offset:
                    counters[f"site{i}.offset"] = used[i]
                if opt is not None:
                    counters[f"site{i}.optimized"] = int(opt)
            bad = [f"{s.function}+{s.probe_offset:#x}" for s, c in zip(knob.sites, sites, strict=True)
                   if c["mismatches"]]
            late = sorted({s.module for i, s in enumerate(knob.sites) if i not in used and
                           s.module and runtime.module_name(s.module) in loaded_mods})
            alerts = ([f"self-check mismatch at {', '.join(bad)}: " +
                       ("knob disabled, nothing written" if state.disabled else
                        "nothing written there")] if bad or state.disabled else []) + \
                ([f"module(s) {', '.join(late)} loaded after the knob: their sites keep the "
                  f"kernel's constant; 'autotune knob unload {knob.name}' and load it again"]
                 if late else [])
            states.append(KnobState(name=knob.name, backend=self.kind,
                                    value=values.live_value(knob.name, GLOBAL, state),
                                    counters=counters, alert="; ".join(alerts) or None))
        return states
