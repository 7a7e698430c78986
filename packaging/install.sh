#!/usr/bin/env bash
# Installs ctrvol on a node, at AMI bake time or from user-data, or into an image tree.
#
#   packaging/install.sh [BUNDLE]
#
# BUNDLE is the built single-file agent (default: dist/ctrvol.cjs of the repository or release
# tarball that holds this script). The units come from its systemd/ folder and the example config
# from packaging/.
#
# DESTDIR=/path installs into that tree instead of /, and then leaves the running system alone:
# it is enabled inside the tree (systemctl --root), and no daemon-reload is sent.
#
# Nothing is downloaded: the script is meant to run during an image build or at boot, where the
# network may be absent or restricted.
set -euo pipefail

readonly unit=ctrvol-setup.service
# Runs after every containerd start: the sandbox image is there, or restored and pinned.
readonly verify_unit=ctrvol-verify.service
# Watches the root disk and the volume on a schedule: warnings, prune, growth, metrics.
readonly monitor_unit=ctrvol-monitor.service
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_root=$(dirname "$here")
bundle=${1:-$source_root/dist/ctrvol.cjs}

# DESTDIR=/ is the running system, so it counts as no DESTDIR; a relative one is made absolute
# for systemctl --root.
destdir=${DESTDIR:-}
destdir=${destdir%/}
if [[ -n $destdir && $destdir != /* ]]; then
  destdir=$PWD/$destdir
fi

fail() {
  echo "ctrvol install: $*" >&2
  exit 1
}

note() {
  echo "ctrvol install: $*"
}

# Copies a file and renames it into place, so that a node booting or a ctrvol starting at the
# same moment sees the old file or the new one, never a half-written one.
put() {
  local mode=$1 source=$2 target=$3
  mkdir -p "$(dirname "$target")"
  install -m "$mode" "$source" "$target.ctrvol-new"
  mv -f "$target.ctrvol-new" "$target"
  note "installed $target"
}

[[ -f $bundle ]] || fail "no bundle at $bundle (build it with: npm run build)"
# The unit executes the bundle directly. Without a shebang the kernel refuses it with "Exec
# format error" at boot, and with onFailure: block containerd then never starts.
[[ $(head -c 2 "$bundle") == '#!' ]] || fail "$bundle does not start with #!; is it the built bundle?"
[[ -f $source_root/systemd/$unit ]] || fail "no $unit under $source_root/systemd"

if [[ -z $destdir ]] && ! command -v node >/dev/null; then
  # A warning only: an image build may install Node.js after this script. But a node that boots
  # without it fails ctrvol-setup.service.
  echo "ctrvol install: warning: node is not on PATH; /usr/bin/ctrvol needs Node.js 20 or later" >&2
fi

put 0755 "$bundle" "$destdir/usr/bin/ctrvol"

for file in "$source_root"/systemd/*.service "$source_root"/systemd/*.timer; do
  [[ -e $file ]] || continue
  put 0644 "$file" "$destdir/usr/lib/systemd/system/$(basename "$file")"
done

# The config is the operator's: an existing one, written by user-data or baked earlier, stays as
# it is, even when it is the example from an older version.
config=$destdir/etc/ctrvol/config.yaml
if [[ -e $config ]]; then
  note "kept existing $config"
else
  put 0644 "$here/config.example.yaml" "$config"
fi

# The drop-in that makes containerd wait for setup is normally written by `ctrvol setup` itself,
# which matches it to onFailure. A node's very first setup can fail before that step, so the
# safe default (onFailure: block) is in place from the start; setup rewrites it to the config.
# It must read exactly as agent/systemd/units.ts renders it for block (a test compares them).
dropin=$destdir/etc/systemd/system/containerd.service.d/10-ctrvol.conf
if [[ -e $dropin ]]; then
  note "kept existing $dropin"
else
  mkdir -p "$(dirname "$dropin")"
  cat >"$dropin.ctrvol-new" <<'DROPIN'
# Written by ctrvol setup; rewritten on every run.
# containerd must not start unless its volume is mounted.
[Unit]
Requires=ctrvol-setup.service
After=ctrvol-setup.service
DROPIN
  chmod 0644 "$dropin.ctrvol-new"
  mv -f "$dropin.ctrvol-new" "$dropin"
  note "installed $dropin"
fi

if ! command -v systemctl >/dev/null; then
  note "systemctl not found; enable $unit, $verify_unit and $monitor_unit before the node boots"
elif [[ -n $destdir ]]; then
  # An image tree: enabling only creates symlinks inside it, which the image's own systemd
  # follows when it boots.
  systemctl --root="$destdir" enable "$unit" "$verify_unit" "$monitor_unit"
elif [[ -d /run/systemd/system ]]; then
  # A running systemd (an AMI bake on a live instance, or user-data) must reread the unit files
  # before it can enable the new unit.
  systemctl daemon-reload
  systemctl enable "$unit" "$verify_unit" "$monitor_unit"
else
  # Not booted with systemd, as in a chroot image build. Enabling is still needed, or ctrvol
  # would never run at boot; systemctl does it offline by writing the symlinks, and there is no
  # manager to reload.
  systemctl enable "$unit" "$verify_unit" "$monitor_unit"
fi
