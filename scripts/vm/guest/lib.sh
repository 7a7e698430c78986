#!/bin/bash
# Helpers for scenario scripts, sourced by them. A scenario step runs once per boot with
#   E2E_BOOT  the boot number (1, 2, ...)     E2E_OUT  where this boot's evidence goes
#   E2E_RUN   the qemu run (1, 2, ...)        E2E_LIB  /usr/local/lib/e2e
# and whatever scenario.env sets (E2E_VOL0, ...).
#
# The scenario collects evidence and the host asserts on it: a step fails (non-zero exit) only
# when it cannot go on, never because ctrvol misbehaved. That keeps the verdict on the host,
# where the test names what went wrong.
set -euo pipefail
# shellcheck source=/dev/null
source "$E2E_LIB/scenario.env"

say() {
  echo "e2e: boot $E2E_BOOT: $*"
}

# record NAME CMD... : runs CMD, keeps its stdout and stderr in NAME and its exit code in
# NAME.rc. Never fails, so that one odd answer does not hide the rest of the evidence.
record() {
  local name=$1 rc=0
  shift
  "$@" >"$E2E_OUT/$name" 2>&1 || rc=$?
  echo "$rc" >"$E2E_OUT/$name.rc"
  return 0
}

# note NAME TEXT : keeps a value for the host.
note() {
  printf '%s\n' "$2" >"$E2E_OUT/$1"
}

# The device node behind the data volume's stable name (the NVMe numbering is not).
vol0_link() {
  echo "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_$E2E_VOL0"
}

wait_for() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      say "gave up waiting for $what after ${seconds}s"
      return 1
    fi
    sleep 1
  done
}

ctr_k8s() {
  ctr --namespace k8s.io "$@"
}

containerd_answers() {
  [[ $(systemctl is-active containerd.service) == active ]] && ctr version
}

wait_containerd() {
  wait_for "containerd to answer" "${1:-180}" containerd_answers
}

# One line per NVMe controller: its serial, its PCI address and the kernel's name for it. The
# kernel numbers controllers as their probes finish, which need not be the PCI order.
nvme_controllers() {
  local ctrl serial
  for ctrl in /sys/class/nvme/nvme*; do
    [[ -e $ctrl/serial ]] || continue
    read -r serial <"$ctrl/serial"
    echo "$serial $(<"$ctrl/address") $(basename "$ctrl")"
  done
}

# What every scenario wants to know about the store and the disks at a given moment.
snapshot() {
  local tag=$1
  record "$tag.findmnt.json" findmnt -J -o SOURCE,TARGET,FSTYPE,UUID,LABEL,OPTIONS \
    --mountpoint /var/lib/containerd
  record "$tag.images.txt" ctr_k8s images ls
  record "$tag.lsblk.json" lsblk -J -o NAME,SERIAL,MODEL,UUID,FSTYPE,LABEL,MOUNTPOINTS
  record "$tag.by-id.txt" ls -l /dev/disk/by-id/
  record "$tag.nvme.txt" nvme_controllers
  record "$tag.units.txt" systemctl show --no-pager ctrvol-setup.service containerd.service \
    -p Id,ActiveState,SubState,Result,ExecMainStatus,InactiveExitTimestampMonotonic \
    -p ActiveEnterTimestampMonotonic,ExecMainStartTimestampMonotonic \
    -p ExecMainExitTimestampMonotonic,UnitFileState
}

# The kernel device (/dev/mdN) of every assembled md array named ctrvol, one per line. Not the
# /dev/md/ctrvol link: udev makes it only when mdadm.conf names no other device for the array.
ctrvol_arrays() {
  local md
  for md in /dev/md[0-9]*; do
    [[ -b $md ]] || continue
    if mdadm --detail --export "$md" 2>/dev/null | grep -qx 'MD_NAME=any:ctrvol'; then
      echo "$md"
    fi
  done
}

# What ctrvol's md array looks like: the kernel's list, which /dev/mdN it is, mdadm's view of it,
# and the ARRAY lines of mdadm's config.
md_snapshot() {
  local tag=$1 md
  md=$(ctrvol_arrays)
  record "$tag.mdstat.txt" cat /proc/mdstat
  note "$tag.md-device.txt" "$md"
  record "$tag.md-detail.txt" mdadm --detail --export "${md%%$'\n'*}"
  record "$tag.mdadm-conf.txt" grep '^ARRAY' /etc/mdadm/mdadm.conf
}

# pod NAME : through CRI (host network, no CNI), as the kubelet would: lists the images, runs a
# pod sandbox and a container in it, then stops and removes both (a node being shut down would
# have been drained). The in-guest pod CLI's JSON report goes to pod-NAME.json, its stderr to
# pod-NAME.err.
pod() {
  local name=$1 rc=0
  node "$E2E_LIB/pod.cjs" run --remove --name "$name" --image "$E2E_APP_IMAGE" \
    >"$E2E_OUT/pod-$name.json" 2>"$E2E_OUT/pod-$name.err" || rc=$?
  echo "$rc" >"$E2E_OUT/pod-$name.json.rc"
  say "pod $name: exit $rc"
}

next_boot() {
  note next reboot
}
