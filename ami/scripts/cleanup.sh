#!/usr/bin/env bash
# Remove per-instance state before the image is captured: every instance started from the image makes
# its own. Packer's shell provisioner runs this as root after Ansible (ami/synapscribe.pkr.hcl), and
# validate.sh then checks that each of these is gone. The environment names the host's parts
# (platform.yaml host):
#
#   SYNAPSCRIBE_UNITS            the services, in start order (stopped in reverse)
#   SYNAPSCRIBE_DEPLOY_ENV_FILE  written at boot by the launch template's user data; never baked
#   BUILD_USER                   the user Packer connected as (Ubuntu's `ubuntu`)
set -euo pipefail

log() { printf 'cleanup: %s\n' "$*"; }

: "${SYNAPSCRIBE_UNITS:?the services (platform.yaml host.units)}"
: "${SYNAPSCRIBE_DEPLOY_ENV_FILE:?the deploy environment file (platform.yaml host.deploy_env_file)}"
: "${BUILD_USER:?the user Packer connected as}"

read -r -a units <<<"$SYNAPSCRIBE_UNITS"
for ((i = ${#units[@]} - 1; i >= 0; i--)); do
  systemctl stop "${units[i]}"
done
log "stopped ${units[*]}"

rm -f "$SYNAPSCRIBE_DEPLOY_ENV_FILE"

# cloud-init's instance state, seed and logs: an instance from the image runs cloud-init afresh.
if command -v cloud-init >/dev/null; then
  cloud-init clean --logs --seed
fi

# Host keys and the machine id are made at first boot; a shared key would let one instance pose as another.
rm -f /etc/ssh/ssh_host_*
truncate -s 0 /etc/machine-id

# The build instance's SSH key (Packer's temporary key pair, which cloud-init put there) must not
# open instances started from the image; they are reached through Session Manager. Packer's open
# connection is not affected: validate.sh still runs on it (awslabs/amazon-eks-ami's cleanup.sh and
# validate.sh do the same).
home=$(getent passwd "$BUILD_USER" | cut -d: -f6)
[ -n "$home" ] || { log "no user $BUILD_USER" >&2; exit 1; }
rm -f "$home/.ssh/authorized_keys" /root/.ssh/authorized_keys
log "removed the SSH keys of $BUILD_USER and root"

journalctl --rotate
journalctl --vacuum-time=1s
log "done"
