"""Entry point: ``python -m kernel_runtime.agent --listen HOST:PORT --token-file FILE``."""

from __future__ import annotations

from kernel_runtime.agent.server import main

main()
