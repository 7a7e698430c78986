#!/bin/bash
# Runs the scenario's step for this boot, keeps the evidence under /var/lib/e2e/out/bootN, then
# either reboots (the scenario asked for it with `next_boot`) or writes everything to the result
# disk (a virtio disk with serial e2e-results, read by the host as a tar archive) and powers off.
# The host may then start the guest again from the same root disk with other NVMe disks: the next
# qemu run, named on the kernel command line as e2e.run=N. Boot numbers go on across runs.
set -euo pipefail
state=/var/lib/e2e
lib=/usr/local/lib/e2e

boot=$(($(cat "$state/boot-count" 2>/dev/null || echo 0) + 1))
echo "$boot" >"$state/boot-count"
out=$state/out/boot$boot
mkdir -p "$out"
run=$(sed -n 's/.*\<e2e\.run=\([0-9]*\).*/\1/p' /proc/cmdline)
run=${run:-1}
echo "$run" >"$out/run"

echo "e2e: boot $boot (run $run): scenario step starts"
set +e
E2E_BOOT=$boot E2E_RUN=$run E2E_OUT=$out E2E_LIB=$lib bash "$lib/scenario.sh" "$boot" 2>&1 |
  tee "$out/scenario.log"
rc=${PIPESTATUS[0]}
set -e
echo "$rc" >"$out/scenario.rc"
echo "e2e: boot $boot: scenario step exited $rc"

# The whole boot's journal, for assertions on ordering and for reading a failure afterwards.
journalctl -b -o json --no-pager >"$out/journal.json" || true
journalctl -b -o short-monotonic --no-pager >"$out/journal.txt" || true
systemd-analyze blame --no-pager >"$out/blame.txt" 2>&1 || true
cp "$state/out/seed.log" "$out/" 2>/dev/null || true

if [[ $rc -eq 0 && $(cat "$out/next" 2>/dev/null) == reboot ]]; then
  echo "e2e: boot $boot: rebooting"
  systemctl reboot --no-block
  exit 0
fi

results=''
for serial in /sys/block/vd*/serial; do
  if [[ $(<"$serial") == e2e-results ]]; then
    results=/dev/$(basename "$(dirname "$serial")")
  fi
done
if [[ -n $results ]]; then
  tar -C "$state/out" -cf "$results" .
  sync
  echo "e2e: results written to $results"
else
  echo "e2e: no result disk"
fi
echo "e2e: done, powering off"
systemctl poweroff --no-block
