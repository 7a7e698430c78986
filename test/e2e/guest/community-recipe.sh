#!/bin/bash
# Scenario 1: the failure ctrvol exists for (amazon-eks-ami #2122), reproduced. No ctrvol in the
# image. User data does what the widely shared recipe does: stop containerd, mkfs the volume,
# empty /var/lib/containerd, mount the volume there, start containerd. The pinned pause image
# was in the store that got hidden, so the next pod sandbox tries to pull it from
# https://localhost/v2/... and fails.
set -euo pipefail
# shellcheck source=/dev/null
source "$E2E_LIB/lib.sh"

wait_containerd
snapshot before
pod before-recipe

say "running the community recipe"
dev=$(readlink -f "$(vol0_link)")
note recipe-device.txt "$dev"
# As user data would carry it: a shell script that stops at the first failing command.
cat >"$E2E_OUT/user-data.sh" <<RECIPE
#!/bin/bash
set -euxo pipefail
systemctl stop containerd
mkfs -t xfs -f $dev
rm -rf /var/lib/containerd/*
mount $dev /var/lib/containerd
systemctl start containerd
RECIPE
record recipe.log bash "$E2E_OUT/user-data.sh"
wait_containerd

snapshot after
pod after-recipe
record containerd-journal.txt journalctl -b -u containerd.service -o cat --no-pager
