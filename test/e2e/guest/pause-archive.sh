#!/bin/bash
# Scenario 4: the pause archive as the last resort. ctrvol baked in; after the first boot's
# setup has run, the store's copy of the pause image is deleted by hand and containerd is
# restarted. ctrvol-verify.service, PartOf= containerd, runs again with it, finds the sandbox
# image missing, re-imports /etc/eks/pause.tar and pins it; then a pod starts.
set -euo pipefail
# shellcheck source=/dev/null
source "$E2E_LIB/lib.sh"

verify_props() {
  systemctl show ctrvol-verify.service -p ActiveState,Result,InvocationID,ExecMainStatus
}
verify_invocation() {
  systemctl show ctrvol-verify.service -p InvocationID --value
}
verify_active() {
  [[ $(systemctl show ctrvol-verify.service -p ActiveState --value) == active ]]
}
verify_rerun() {
  verify_active && [[ $(verify_invocation) != "$1" ]]
}

wait_containerd
wait_for "ctrvol-verify to finish" 180 verify_active
snapshot before
record verify-before.txt verify_props
first=$(verify_invocation)

say "deleting the pause image by hand"
record rm-pause.txt ctr_k8s images rm "$E2E_SANDBOX_IMAGE"
record removed.images.txt ctr_k8s images ls

say "restarting containerd"
record restart.txt systemctl restart containerd.service
wait_containerd
wait_for "ctrvol-verify to run again" 180 verify_rerun "$first" || true
record verify-after.txt verify_props
second=$(verify_invocation)
note verify-invocations.txt "$first $second"
record verify-journal.txt journalctl -b -u ctrvol-verify.service -o short-monotonic --no-pager
record verify-status.txt systemctl status ctrvol-verify.service --no-pager --lines=20
snapshot after
# A second run by hand changes nothing.
record verify-again.txt ctrvol verify
pod after-restore
