#!/bin/bash
# Scenario 8: the instance store as one raid10 (volume.instanceStore: raid10) over two qemu runs.
# Four NVMe disks have serials matching volume.instanceStoreSerial; a fifth, EBS-like, is nobody's.
#   run 1, boot 1: ctrvol-setup builds the array from the four blank disks, formats it, carries
#                  the AMI's store over and mounts it; a marker file goes on it; reboot.
#   run 1, boot 2: the array comes back under another md number, and ctrvol uses it as it is.
#   run 2, boot 3: after a stop and start the four disks are new and blank: ctrvol sees that its
#                  array is gone, builds a new one and carries the store over again.
# No pods: scenario 2 shows that a store ctrvol mounted serves them.
set -euo pipefail
# shellcheck source=/dev/null
source "$E2E_LIB/lib.sh"

wait_containerd
snapshot after-boot
md_snapshot after-boot
record ctrvol-state.json cat /var/lib/ctrvol/state.json

case $E2E_BOOT in
  1)
    marker="written at boot 1: $(cat /proc/sys/kernel/random/boot_id)"
    note marker.txt "$marker"
    printf '%s\n' "$marker" >/var/lib/containerd/e2e-marker
    # Another md number at the next boot. udev assembles the array as its members appear, under
    # the device its mdadm.conf line gives; ctrvol's line says /dev/md/ctrvol, for which mdadm
    # takes md127. The same line naming /dev/md5 instead, as an administrator or an older
    # `mdadm --detail --scan` may write it, has the array assembled as md5. Nothing else changes:
    # same array, same UUID, and ctrvol must take it as it comes.
    sed -i 's|^ARRAY /dev/md/ctrvol |ARRAY /dev/md5 |' /etc/mdadm/mdadm.conf
    record mdadm-conf-edited.txt grep '^ARRAY' /etc/mdadm/mdadm.conf
    sync
    next_boot
    ;;
  2)
    record marker.txt cat /var/lib/containerd/e2e-marker
    ;;
  3)
    record marker.txt cat /var/lib/containerd/e2e-marker
    # Once, after the rebuild: every Node.js start costs seconds here.
    record ctrvol-status-cmd.json ctrvol status --json
    ;;
esac
