#!/bin/bash
# Scenario 9: two EBS-like volumes pooled as raid0 (volume.devices: one by its mapping name, one
# by its volume id), with a third volume that nothing names. One boot: ctrvol-setup builds the
# array, formats it, carries the AMI's store over and mounts it. No pods (see scenario 2).
set -euo pipefail
# shellcheck source=/dev/null
source "$E2E_LIB/lib.sh"

wait_containerd
snapshot after-boot
md_snapshot after-boot
record ctrvol-state.json cat /var/lib/ctrvol/state.json
record xvdb.txt readlink -f /dev/xvdb
