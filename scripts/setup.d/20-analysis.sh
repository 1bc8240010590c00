# autotune analyze needs angr, capstone and pyelftools (the optional 'analysis' extra).
"$AUTOTUNE_ROOT/.venv/bin/pip" install -q -e "$AUTOTUNE_ROOT[analysis]" 2>&1 | grep -v -E "^(WARNING|  )" || true
