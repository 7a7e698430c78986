#!/bin/bash
# Scenario 6: `ctrvol prune` inside a running node. ctrvol baked in with prune.minAgeSeconds 0.
# The node holds: a pod with a running container (the app image), a pod whose container ran and
# exited (its own image, kept), the pinned sandbox image, a second tag of the app image, and
# unused images (one of them under two tags). `ctrvol prune --target-percent 1` must remove only
# the unused ones; the 1 % target cannot be reached, so it exits 1 naming what it kept and why.
set -euo pipefail
# shellcheck source=/dev/null
source "$E2E_LIB/lib.sh"

podcli() {
  node "$E2E_LIB/pod.cjs" "$@"
}

# pod_keep NAME IMAGE [ARGS...] : like lib.sh's `pod`, but the pod stays.
pod_keep() {
  local name=$1 image=$2 rc=0
  shift 2
  podcli run --name "$name" --image "$image" "$@" \
    >"$E2E_OUT/pod-$name.json" 2>"$E2E_OUT/pod-$name.err" || rc=$?
  echo "$rc" >"$E2E_OUT/pod-$name.json.rc"
  say "pod $name: exit $rc"
}

wait_containerd
wait_for "ctrvol-verify to finish" 180 \
  bash -c '[[ $(systemctl show ctrvol-verify.service -p ActiveState --value) == active ]]'

# The busybox binary of the app image, for an image of our own whose container exits.
work=$(mktemp -d)
ctr_k8s images export "$work/app.tar" "$E2E_APP_IMAGE"
mkdir "$work/app" "$work/root"
tar -xf "$work/app.tar" -C "$work/app"
for blob in "$work"/app/blobs/sha256/*; do
  if tar -tzf "$blob" 2>/dev/null | grep -qx 'bin/busybox'; then
    tar -xzf "$blob" -C "$work/root" bin/busybox
  fi
done
[[ -x $work/root/bin/busybox ]] || {
  say "no bin/busybox in $E2E_APP_IMAGE"
  exit 1
}

exits=localhost/e2e/exits:1
record build-exits.txt podcli build-image --name "$exits" --out "$work/exits.tar" \
  --file "$work/root/bin/busybox:bin/busybox" --entrypoint /bin/busybox --entrypoint true
record build-unused-a.txt podcli build-image --name localhost/e2e/unused-a:1 \
  --out "$work/unused-a.tar" --bytes 16777216
record build-unused-b.txt podcli build-image --name localhost/e2e/unused-b:1 \
  --out "$work/unused-b.tar" --bytes 8388608
for archive in exits unused-a unused-b; do
  record "import-$archive.txt" ctr_k8s images import "$work/$archive.tar"
done
record tag-unused-a.txt ctr_k8s images tag localhost/e2e/unused-a:1 localhost/e2e/unused-a:2
record tag-app-alias.txt ctr_k8s images tag "$E2E_APP_IMAGE" localhost/e2e/app-alias:1

pod_keep running "$E2E_APP_IMAGE"
pod_keep exited "$exits" --exit

snapshot before
record cri-images-before.json podcli images
record containers-before.txt ctr_k8s containers ls
record prune-dry-run.txt ctrvol prune --dry-run --target-percent 1
record prune.txt ctrvol prune --target-percent 1
snapshot after
record cri-images-after.json podcli images
record df.txt df -h /var/lib/containerd
record images-usage.json cat /var/lib/ctrvol/images.json
