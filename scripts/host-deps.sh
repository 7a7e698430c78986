#!/usr/bin/env bash
# Installs the Debian packages of a list (default: scripts/host-packages.txt) that are not
# installed yet. Run as root on Debian; it is quick when everything is already there.
#   scripts/host-deps.sh [LIST]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list=${1:-$here/host-packages.txt}
mapfile -t wanted < <(grep -v '^#' "$list" | grep -v '^$')

missing=()
for package in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "host-deps: missing ${missing[*]}; run as root to install them" >&2
  exit 3
fi

echo "host-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
