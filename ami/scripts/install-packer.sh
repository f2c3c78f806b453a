#!/usr/bin/env bash
# Install one pinned Packer from HashiCorp's apt repository (the image pipeline's CodeBuild
# project, ami/buildspec.yml; Debian's and Ubuntu's own packer is too old for ami/). The
# repository's key is accepted only if it is HashiCorp's release key, by its pinned fingerprint.
#
#   ami/scripts/install-packer.sh PACKAGE_VERSION KEY_FINGERPRINT    (as root)
set -euo pipefail

version=${1:?the packer package version, e.g. 1.11.2-1}
fingerprint=${2:?the OpenPGP fingerprint of the HashiCorp release key}
keyring=/usr/share/keyrings/hashicorp-archive-keyring.gpg

key=$(mktemp)
trap 'rm -f "$key"' EXIT
curl -fsSL https://apt.releases.hashicorp.com/gpg -o "$key"
found=$(gpg --show-keys --with-colons "$key" | awk -F: '$1 == "fpr" {print $10}')
if [ "$found" != "$fingerprint" ]; then
  printf 'install-packer: the key holds %s, not %s: refusing it\n' "${found:-nothing}" "$fingerprint" >&2
  exit 1
fi
gpg --dearmor <"$key" >"$keyring"
# shellcheck source=/dev/null
. /etc/os-release
echo "deb [signed-by=$keyring] https://apt.releases.hashicorp.com $VERSION_CODENAME main" \
  >/etc/apt/sources.list.d/hashicorp.list
apt-get update -qq
apt-get install -y -qq "packer=$version"
packer version
