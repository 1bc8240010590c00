"""The lab target: Debian's 6.12 cloud kernel in a QEMU VM, driven through the agent."""

from __future__ import annotations

from kernel_runtime.lab.image import LabImage, build_image
from kernel_runtime.lab.target import LabTarget
from kernel_runtime.lab.vm import Lab

__all__ = ["Lab", "LabImage", "LabTarget", "build_image"]
