"""Which SIE knobs a kernel offers: the hand catalog merged with an analysis catalog.

The hand catalog (``kernel_runtime/sie/catalogs/RELEASE.json``) ships with the package and is
checked knob by knob by the lab tests; its sites say ``verified: none`` because no oracle
checked them, and they stay trusted by where they come from. An analysis catalog
(``autotune analyze --oracle``, cached per build-id, or a file given with ``--catalog``) adds
what the analysis found. Two rules hold for it: its build-id must be the target's, and every
site of a knob must be oracle-verified, unless the user asked for unverified sites by a flag
that says what it does. On a name in both, the hand knob wins (its probes are lab-tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autotune.core.catalog import Catalog, Knob, load_catalog
from autotune.core.errors import BadInputError, KernelMismatchError
from autotune.core.kernel import KernelInfo
from kernel_runtime.paths import cache_dir
from kernel_runtime.sie import artifacts

UNVERIFIED_FLAG = "--unsafe-allow-unverified-sites"
HAND, ANALYSIS, GIVEN = "hand", "analysis", "--catalog"


@dataclass(frozen=True)
class CatalogChoice:
    """The user's catalog request; plain data, so it travels to Ray actors and the lab agent."""

    path: str | None = None
    allow_unverified: bool = False


DEFAULT_CHOICE = CatalogChoice()


def default_analysis_catalog(build_id: str) -> Path:
    """Where ``autotune analyze --oracle`` caches the whole-list catalog of a build."""
    return cache_dir() / "catalogs" / f"{build_id}.oracle.json"


def known_build(kernel: KernelInfo) -> bool:
    return kernel.build_id not in ("", "unknown")


def mismatch(catalog: Catalog, kernel: KernelInfo) -> str | None:
    """Why ``catalog`` does not describe ``kernel``'s binary, or None."""
    have = catalog.kernel
    if known_build(kernel) and have.build_id != kernel.build_id:
        return (f"is for {have.release} build {have.build_id[:12]}, the target runs "
                f"{kernel.release} build {kernel.build_id[:12]}")
    if have.release != kernel.release:
        return f"is for kernel {have.release}, the target runs {kernel.release}"
    return None


def unverified_reason(knob: Knob) -> str | None:
    """Why ``knob`` may not load by the oracle rule (no trust, no override), or None."""
    bad = [s for s in knob.sites if s.verified != "oracle"]
    if knob.backend != "sie" or not bad:
        return None
    where = ", ".join(f"{s.function}+{s.probe_offset:#x} ({s.verified})" for s in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return (f"{len(bad)} of {len(knob.sites)} sites not oracle-verified: {where}{more}; "
            f"run 'autotune analyze --const {knob.name} --oracle --force', "
            f"or pass {UNVERIFIED_FLAG} to load them anyway")


@dataclass
class KnobSet:
    """The SIE knobs of one target kernel, each with the catalog it came from."""

    kernel: KernelInfo
    hand: Catalog | None = None
    analysis: Catalog | None = None
    analysis_path: Path | None = None
    analysis_origin: str = ANALYSIS
    notes: list[str] = field(default_factory=list)

    def hand_knobs(self) -> list[Knob]:
        return list(self.hand.knobs) if self.hand else []

    def extras(self) -> list[Knob]:
        """Analysis knobs the hand catalog does not define."""
        mine = {k.name for k in self.hand_knobs()}
        return [k for k in (self.analysis.knobs if self.analysis else []) if k.name not in mine]

    def shadowed(self) -> list[str]:
        """Analysis knobs left out because the hand catalog has a lab-tested knob of that name."""
        mine = {k.name for k in self.hand_knobs()}
        return [k.name for k in (self.analysis.knobs if self.analysis else []) if k.name in mine]

    def knobs(self) -> list[Knob]:
        return self.hand_knobs() + self.extras()

    def origin(self, name: str) -> str:
        return HAND if name in {k.name for k in self.hand_knobs()} else self.analysis_origin

    def trusted_catalog(self) -> Catalog:
        """The hand catalog, or an empty one for a kernel without: the trusted set."""
        return self.hand or Catalog(kernel=self.kernel)


def load_knob_set(kernel: KernelInfo, choice: CatalogChoice) -> KnobSet:
    """The hand catalog of ``kernel`` plus ``choice.path`` or the cached oracle catalog.

    A named catalog for another build is refused (nothing is loaded); an implicit one that
    does not fit (stale cache, older schema) is left out with a note instead.
    """
    found = KnobSet(kernel=kernel)
    hand = artifacts.catalog_for(kernel.release)
    if hand is not None and (why := mismatch(hand, kernel)) is None:
        found.hand = hand
    elif hand is not None:
        found.notes.append(f"hand catalog left out: it {why}")
    if choice.path is not None:
        path = Path(choice.path).expanduser()
        catalog = load_catalog(path)
        if (why := mismatch(catalog, kernel)) is not None:
            raise KernelMismatchError(f"catalog {path} {why}: analyse this build with "
                                      "'autotune analyze --oracle' or pass its own catalog")
        found.analysis, found.analysis_path, found.analysis_origin = catalog, path, GIVEN
        return found
    if not known_build(kernel):
        return found
    path = default_analysis_catalog(kernel.build_id)
    if not path.exists():
        return found
    try:
        catalog = load_catalog(path)
    except BadInputError as e:
        found.notes.append(f"analysis catalog left out: {e}")
        return found
    if (why := mismatch(catalog, kernel)) is not None:
        found.notes.append(f"analysis catalog {path} left out: it {why}")
        return found
    found.analysis, found.analysis_path = catalog, path
    return found
