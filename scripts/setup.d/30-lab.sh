# The lab's kernel comes from bookworm(-security)'s linux-6.12 packages: make sure apt
# knows them, then (test set-up only) build and test-boot the lab image once.
if [[ -z "$(apt-cache search --names-only '^linux-image-6\.12\..*-cloud-amd64-unsigned$')" ]]; then
  echo "setup: apt lists lack linux-6.12; running apt-get update"
  $SUDO apt-get update -q >/dev/null
fi
if [[ "${AUTOTUNE_SETUP_TESTS:-0}" == "1" ]]; then
  "$AUTOTUNE_ROOT/.venv/bin/autotune" lab build
fi
