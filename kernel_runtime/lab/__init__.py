"""The lab target: Debian's 6.12 cloud kernel in a QEMU VM, driven through the agent."""
