#!/usr/bin/env bash
# Installs the Debian packages of scripts/vm/host-packages.txt that are missing, for the e2e VM
# harness (npm run test:e2e). Quick when everything is there. Run as root on Debian.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mapfile -t wanted < <(grep -v '^#' "$here/host-packages.txt" | grep -v '^$')

missing=()
for package in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "vm host-deps: missing ${missing[*]}; run as root to install them" >&2
  exit 3
fi
echo "vm host-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
