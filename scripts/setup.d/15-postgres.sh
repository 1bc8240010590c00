# PostgreSQL study storage (--storage postgresql://...): the 'postgres' extra (psycopg2-binary).
# The tests start a private server of their own; Debian's system cluster, running or not, is
# left alone (nothing depends on it).
"$AUTOTUNE_ROOT/.venv/bin/pip" install -q -e "$AUTOTUNE_ROOT[postgres]" 2>&1 | grep -v -E "^(WARNING|  )" || true
