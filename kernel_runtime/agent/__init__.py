"""The on-target agent: JSON-lines RPC that runs knobs and processes where the kernel is."""
