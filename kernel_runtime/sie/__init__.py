"""SIE: compiled-in kernel constants made live through kprobe-attached eBPF.

``SieBackend`` is the Backend; ``lab_payload`` is what the lab image builder copies into
the guest (module, catalog, precompiled BPF objects).
"""

from __future__ import annotations

from kernel_runtime.sie.backend import SieBackend
from kernel_runtime.sie.payload import lab_payload

__all__ = ["SieBackend", "lab_payload"]
