"""Catalog + value -> live kernel state: backends, the write journal, targets.

Public names are re-exported here; heavy or optional pieces (the SIE loader, the lab VM)
live in submodules imported only when used.
"""

from __future__ import annotations

from kernel_runtime.backend import Backend, KnobState, Scope
from kernel_runtime.controller import KnobController
from kernel_runtime.journal import Journal
from kernel_runtime.target import Target

__all__ = ["Backend", "Journal", "KnobController", "KnobState", "Scope", "Target"]
