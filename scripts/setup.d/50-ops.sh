# Operations: reports, nightly studies and the dashboard need the 'reports' extra; the Ray
# executor (the 'ray' extra) and headless Chromium (the report rendering test) are installed
# for the test suite, or when AUTOTUNE_WITH_RAY=1 for users who run studies on several kernels.
"$AUTOTUNE_ROOT/.venv/bin/pip" install -q -e "$AUTOTUNE_ROOT[reports]" 2>&1 | grep -v -E "^(WARNING|  )" || true
if [[ "${AUTOTUNE_SETUP_TESTS:-0}" == 1 || "${AUTOTUNE_WITH_RAY:-0}" == 1 ]]; then
  "$AUTOTUNE_ROOT/.venv/bin/pip" install -q -e "$AUTOTUNE_ROOT[ray]" 2>&1 | grep -v -E "^(WARNING|  )" || true
fi
if [[ "${AUTOTUNE_SETUP_TESTS:-0}" == 1 ]] && ! command -v chromium >/dev/null; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null
fi
