# PostgreSQL study storage (--storage postgresql+psycopg2://...): the 'postgres' extra
# (psycopg2-binary). The tests start their own private server, never Debian's system
# cluster, which the package may have started: stop it so nothing listens on 5432 unasked.
"$AUTOTUNE_ROOT/.venv/bin/pip" install -q -e "$AUTOTUNE_ROOT[postgres]" 2>&1 | grep -v -E "^(WARNING|  )" || true
if [[ "${AUTOTUNE_SETUP_TESTS:-0}" == 1 ]] && systemctl is-active --quiet postgresql 2>/dev/null; then
  $SUDO systemctl stop postgresql || true
fi
