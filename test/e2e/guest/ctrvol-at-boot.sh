#!/bin/bash
# Scenarios 2 and 3: ctrvol baked into the image, the data volume blank at the first boot.
#   boot 1: ctrvol-setup formats the volume, carries the AMI's store over and mounts it before
#           containerd starts; a pod starts; a marker file is left on the volume; reboot.
#   boot 2: the same volume comes back by UUID, untouched, and a pod starts again.
set -euo pipefail
# shellcheck source=/dev/null
source "$E2E_LIB/lib.sh"

wait_containerd
snapshot after-boot
record ctrvol-status.txt systemctl status ctrvol-setup.service --no-pager --lines=40
record ctrvol-journal.txt journalctl -b -u ctrvol-setup.service -o short-monotonic --no-pager
record ctrvol-state.json cat /var/lib/ctrvol/state.json
# What is mounted from the filesystem with the UUID ctrvol recorded.
uuid=$(sed -n 's/^ *"uuid": "\([0-9a-f-]*\)".*/\1/p' /var/lib/ctrvol/state.json)
record findmnt-by-uuid.txt findmnt -n -o TARGET --source "UUID=$uuid"
record containerd-dropin.txt systemctl cat containerd.service
record vol0-device.txt readlink -f "$(vol0_link)"
record blkid-vol0.txt blkid -o export "$(vol0_link)"
pod "boot$E2E_BOOT"

case $E2E_BOOT in
  1)
    # `ctrvol status` once: every Node.js start costs seconds on an emulated CPU.
    record ctrvol-status-cmd.json ctrvol status --json
    # A file only this boot writes: the next boot must find it on the volume.
    marker="written at boot 1: $(cat /proc/sys/kernel/random/boot_id)"
    note marker.txt "$marker"
    printf '%s\n' "$marker" >/var/lib/containerd/e2e-marker
    sync
    next_boot
    ;;
  2)
    record marker.txt cat /var/lib/containerd/e2e-marker
    ;;
esac
