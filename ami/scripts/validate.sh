#!/usr/bin/env bash
# The last step of the bake: fail it unless the image is complete and carries no per-instance state.
# Packer's shell provisioner runs this as root after cleanup.sh (ami/synapscribe.pkr.hcl). Every check
# runs and each failure is named; the exit status is 1 if any failed. The environment names what was
# baked (platform.yaml, through the Packer template):
#
#   SYNAPSCRIBE_UNITS, SYNAPSCRIBE_VLLM_UNIT, SYNAPSCRIBE_DEPLOY_ENV_FILE, BUILD_USER
#   SYNAPSCRIBE_MAX_MODEL_LEN        the context length the vLLM unit must serve
#   SYNAPSCRIBE_VLLM_VENV, SYNAPSCRIBE_VLLM_VERSION
#   SYNAPSCRIBE_MODEL_ID, SYNAPSCRIBE_MODEL_PATH, SYNAPSCRIBE_MODEL_REVISION (as requested),
#   SYNAPSCRIBE_MODEL_CHECKSUM_FILE, SYNAPSCRIBE_MODEL_REVISION_FILE
#   SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE  the CloudWatch agent's configuration with {env} unfilled
#   SYNAPSCRIBE_AGENT_CONFIG           what the user data renders from it at boot: never baked
#
# VALIDATE_GPU, VALIDATE_VLLM, VALIDATE_MODEL (default true) switch off the checks of what a host
# without a GPU does not have (the host tests), as the Ansible switches leave it out there.
set -euo pipefail

failures=0
fail() {
  printf 'validate: FAILED: %s\n' "$*" >&2
  failures=$((failures + 1))
}
ok() { printf 'validate: ok %s\n' "$*"; }
# check DESCRIPTION COMMAND...: run one check, record its failure and go on.
check() {
  local description=$1
  shift
  if "$@"; then ok "$description"; else fail "$description"; fi
}
enabled() { [ "${!1:-true}" = true ]; }

: "${SYNAPSCRIBE_UNITS:?}" "${SYNAPSCRIBE_VLLM_UNIT:?}" "${SYNAPSCRIBE_DEPLOY_ENV_FILE:?}" "${BUILD_USER:?}"
: "${SYNAPSCRIBE_MAX_MODEL_LEN:?}"
: "${SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE:?}" "${SYNAPSCRIBE_AGENT_CONFIG:?}"

gpu_visible() {
  lsmod | grep -q '^nvidia ' &&
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | grep -q .
}

vllm_version_is() {
  [ "$("$SYNAPSCRIBE_VLLM_VENV/bin/python" -c 'import vllm; print(vllm.__version__)')" = "$1" ]
}

units_enabled() {
  local unit state all=0
  local -a units
  read -r -a units <<<"$SYNAPSCRIBE_UNITS"
  for unit in "${units[@]}"; do
    state=$(systemctl is-enabled "$unit" 2>/dev/null || true)
    [ "$state" = enabled ] || { printf 'validate: %s is %s\n' "$unit" "${state:-missing}" >&2; all=1; }
  done
  return "$all"
}

serves_context() {
  grep -q -- "--max-model-len $SYNAPSCRIBE_MAX_MODEL_LEN" "/etc/systemd/system/$SYNAPSCRIBE_VLLM_UNIT.service"
}

weights_read_only() { [ "$(stat -c %U:%a "$SYNAPSCRIBE_MODEL_PATH")" = root:555 ]; }

weights_match() {
  (cd "$SYNAPSCRIBE_MODEL_PATH" && sha256sum --quiet --check "$SYNAPSCRIBE_MODEL_CHECKSUM_FILE")
}

# The commit the requested revision resolved to; a pinned commit must be the one baked.
model_commit_recorded() {
  local revision
  revision=$(cat "$SYNAPSCRIBE_MODEL_PATH/$SYNAPSCRIBE_MODEL_REVISION_FILE") || return 1
  if ! [[ $revision =~ ^[0-9a-f]{40}$ ]]; then
    printf 'validate: %s holds %q, not a commit\n' "$SYNAPSCRIBE_MODEL_REVISION_FILE" "$revision" >&2
    return 1
  fi
  if [[ $SYNAPSCRIBE_MODEL_REVISION =~ ^[0-9a-f]{40}$ ]] && [ "$revision" != "$SYNAPSCRIBE_MODEL_REVISION" ]; then
    printf 'validate: baked %s, pinned %s\n' "$revision" "$SYNAPSCRIBE_MODEL_REVISION" >&2
    return 1
  fi
  printf 'validate: model %s@%s (requested %s)\n' "$SYNAPSCRIBE_MODEL_ID" "$revision" "$SYNAPSCRIBE_MODEL_REVISION"
}

no_host_keys() { [ -z "$(find /etc/ssh -name 'ssh_host_*' -print -quit)" ]; }

no_cloud_init_state() {
  [ ! -e /var/lib/cloud/instance ] && [ -z "$(ls -A /var/lib/cloud/instances 2>/dev/null)" ]
}

no_authorized_keys() {
  local home found=0 file
  home=$(getent passwd "$BUILD_USER" | cut -d: -f6)
  [ -n "$home" ] || { printf 'validate: no user %s\n' "$BUILD_USER" >&2; return 1; }
  for file in "$home/.ssh/authorized_keys" /root/.ssh/authorized_keys; do
    if [ -e "$file" ]; then
      printf 'validate: %s is still there\n' "$file" >&2
      found=1
    fi
  done
  return "$found"
}

if enabled VALIDATE_GPU; then
  check "the NVIDIA driver is loaded and sees the GPU" gpu_visible
fi
if enabled VALIDATE_VLLM; then
  : "${SYNAPSCRIBE_VLLM_VENV:?}" "${SYNAPSCRIBE_VLLM_VERSION:?}"
  check "vLLM $SYNAPSCRIBE_VLLM_VERSION in $SYNAPSCRIBE_VLLM_VENV" vllm_version_is "$SYNAPSCRIBE_VLLM_VERSION"
fi
if enabled VALIDATE_MODEL; then
  : "${SYNAPSCRIBE_MODEL_ID:?}" "${SYNAPSCRIBE_MODEL_PATH:?}" "${SYNAPSCRIBE_MODEL_REVISION:?}"
  : "${SYNAPSCRIBE_MODEL_CHECKSUM_FILE:?}" "${SYNAPSCRIBE_MODEL_REVISION_FILE:?}"
  check "the weights are read-only (root:555)" weights_read_only
  check "the weights match $SYNAPSCRIBE_MODEL_CHECKSUM_FILE" weights_match
  check "the model commit is recorded in $SYNAPSCRIBE_MODEL_REVISION_FILE" model_commit_recorded
fi
check "the units are enabled ($SYNAPSCRIBE_UNITS)" units_enabled
check "vLLM serves a context of $SYNAPSCRIBE_MAX_MODEL_LEN tokens" serves_context
check "no SSH host keys" no_host_keys
check "no cloud-init instance state" no_cloud_init_state
check "no $SYNAPSCRIBE_DEPLOY_ENV_FILE" test ! -e "$SYNAPSCRIBE_DEPLOY_ENV_FILE"
# One image for every environment: the agent's template, never one environment's configuration.
check "the CloudWatch agent's template $SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE" test -s "$SYNAPSCRIBE_AGENT_CONFIG_TEMPLATE"
check "no $SYNAPSCRIBE_AGENT_CONFIG" test ! -e "$SYNAPSCRIBE_AGENT_CONFIG"
check "no authorized_keys of $BUILD_USER or root" no_authorized_keys

if [ "$failures" -gt 0 ]; then
  printf 'validate: %d check(s) failed: the image is not complete\n' "$failures" >&2
  exit 1
fi
echo 'validate: image complete'
