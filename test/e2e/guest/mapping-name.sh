#!/bin/bash
# Scenario 7: the data volume named by its block-device mapping (volume.device: xvdb), with the
# udev link amazon-ec2-utils would make, over two qemu runs (an EC2 stop and start):
#   run 1, boot 1: ctrvol-setup resolves xvdb, formats the blank volume and mounts it; a marker
#                  file is left on it; power off.
#   run 2, boot 2: the two NVMe disks are attached in the other order, so their kernel names
#                  swap; the same volume is mounted again, the marker is there, and the other
#                  disk is still blank.
# No pods: scenario 2 shows that a store ctrvol mounted serves them.
set -euo pipefail
# shellcheck source=/dev/null
source "$E2E_LIB/lib.sh"

wait_containerd
snapshot after-boot
record xvdb.txt readlink -f /dev/xvdb
record ctrvol-state.json cat /var/lib/ctrvol/state.json
record ctrvol-journal.txt journalctl -b -u ctrvol-setup.service -o short-monotonic --no-pager
record blkid-vol1.txt blkid -p -o export "/dev/disk/by-id/nvme-QEMU_NVMe_Ctrl_$E2E_VOL1"

case $E2E_RUN in
  1)
    marker="written in run 1: $(cat /proc/sys/kernel/random/boot_id)"
    note marker.txt "$marker"
    printf '%s\n' "$marker" >/var/lib/containerd/e2e-marker
    sync
    ;;
  2)
    record marker.txt cat /var/lib/containerd/e2e-marker
    # Once, in the run where the names have changed: every Node.js start costs seconds here.
    record ctrvol-status-cmd.json ctrvol status --json
    ;;
esac
