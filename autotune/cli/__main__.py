"""``python -m autotune.cli`` runs the CLI (used by tests and when the script is not on PATH)."""

from autotune.cli.main import main

main()
