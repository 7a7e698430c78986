#!/usr/bin/env bash
# Builds the e2e base image from Debian trixie packages, the stand-in for an AL2023 EKS AMI:
#
#   scripts/vm/build-base.sh OUT_DIR [KEY]
#
# OUT_DIR receives base.qcow2 (an ext4 root filesystem on the whole disk, /dev/vda in the
# guest), vmlinuz and initrd.img (booted with qemu -kernel/-initrd, so the image needs no boot
# loader) and manifest.json. The image holds:
#   - systemd, udev, containerd and runc, xfsprogs, mdadm, nvme-cli, Node.js (guest-packages.txt);
#   - containerd's config naming sandbox_image = "localhost/kubernetes/pause:latest";
#   - that image in the k8s.io namespace, labelled io.cri-containerd.pinned=pinned, and exported
#     to /etc/eks/pause.tar, as the AMI build caches it (plus an unpinned workload image);
#   - /usr/local/sbin/e2e-init, which applies a scenario's seed disk at its first boot.
# ctrvol itself is not in the base: each scenario installs it into its own overlay, so that a
# change to ctrvol does not rebuild this image.
#
# Packages come from the Debian mirror this host's apt already uses. The build runs in
# OUT_DIR.partial-PID and is renamed to OUT_DIR only when complete. Needs root (debootstrap,
# chroot) and the packages of host-packages.txt.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: build-base.sh OUT_DIR [KEY]}
key=${2:-unkeyed}
readonly suite=trixie

log() {
  echo "build-base: $(date +%T) $*"
}

fail() {
  echo "build-base: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || fail "must run as root (debootstrap, chroot)"
[[ ! -e $out ]] || fail "$out already exists"

# The mirror is whatever this host's apt uses: the first URIs line of its deb822 sources (the
# main archive; security comes after it), else the first URI of a deb line in sources.list
# (the first field after "deb" and its options in brackets, if any).
mirror_uri() {
  local uri=''
  if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    uri=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [[ -z $uri && -r /etc/apt/sources.list ]]; then
    uri=$(sed -n -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
      /etc/apt/sources.list | head -1)
  fi
  [[ -n $uri ]] || fail "no Debian mirror found in /etc/apt/sources.list.d/debian.sources"
  echo "$uri"
}
mirror=$(mirror_uri)

work=$(realpath -m "$out").partial-$$
root=$work/root
mounts=()
containerd_pid=''

# Undoes what this build set up, newest first: the chroot's containerd (by the PID it was
# started with), the mounts it made under its own tree, then the tree itself. The tree is only
# removed once nothing is mounted below it, since rm -rf would walk into a mount.
cleanup() {
  local status=$? i
  if [[ -n $containerd_pid ]]; then
    kill "$containerd_pid" 2>/dev/null || true
    wait "$containerd_pid" 2>/dev/null || true
  fi
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" || true
  done
  if [[ -d $work ]]; then
    if findmnt -rno TARGET | grep -q "^$work/"; then
      echo "build-base: something is still mounted under $work; leaving it" >&2
    else
      rm -rf "$work"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT

mount_in_root() {
  local fstype=$1 target=$root$2
  mount -t "$fstype" "e2e-$fstype" "$target"
  mounts+=("$target")
}

unmount_all() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}"
  done
  mounts=()
}

mkdir -p "$work/images" "$work/image"
started=$SECONDS

# --- The sandbox image and the workload image, built on the host ---------------------------
log "building the pause binary and the OCI archives"
gcc -static -O2 -s -Wall -Wextra -o "$work/pause" "$here/guest/pause.c"
busybox=$(command -v busybox || true)
[[ -n $busybox ]] || fail "busybox not found (install busybox-static)"
# A dynamically linked busybox would find no libc inside the image.
if ldd "$busybox" >/dev/null 2>&1; then
  fail "$busybox is dynamically linked; install busybox-static"
fi
(cd "$repo" && node --import tsx scripts/vm/bake-images.ts \
  --pause "$work/pause" --busybox "$busybox" --out "$work/images")

# --- The root tree from Debian's packages ---------------------------------------------------
packages=$(grep -v '^#' "$here/guest-packages.txt" | grep -v '^$' | paste -sd, -)
log "debootstrap $suite from $mirror"
# Two stages, so that the initramfs settings below are in place before the kernel's postinst
# builds the initramfs (rebuilding it afterwards would cost another half minute).
debootstrap --foreign --variant=minbase --components=main --include="$packages" \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  {
    tail -20 "$work/debootstrap.log" >&2
    fail "debootstrap (first stage) failed"
  }

# The root disk is virtio and ext4. Listing only what mounts it (MODULES=list) keeps the
# initramfs small: it is unpacked by an emulated CPU at every boot. udev inside the initramfs
# would load the virtio modules by alias; force_load makes it independent of that.
mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks"
echo 'MODULES=list' >"$root/etc/initramfs-tools/conf.d/e2e.conf"
cat >"$root/etc/initramfs-tools/hooks/e2e-virtio" <<'HOOK'
#!/bin/sh
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
for module in virtio_pci virtio_blk ext4; do
  force_load "$module"
done
HOOK
chmod 0755 "$root/etc/initramfs-tools/hooks/e2e-virtio"
# In place before the initramfs is built, which copies /etc/modprobe.d.
install -D -m 0644 "$here/guest/modprobe-e2e.conf" "$root/etc/modprobe.d/e2e.conf"

log "debootstrap second stage"
chroot "$root" /debootstrap/debootstrap --second-stage >>"$work/debootstrap.log" 2>&1 ||
  {
    tail -20 "$work/debootstrap.log" >&2
    fail "debootstrap (second stage) failed"
  }

# --- Configuration --------------------------------------------------------------------------
log "configuring the guest"
# containerd copies /etc/hosts into every sandbox and fails the sandbox without it.
install -m 0644 "$here/guest/hosts" "$root/etc/hosts"
echo ctrvol-e2e >"$root/etc/hostname"
# No fsck pass: the image is made clean and each scenario's overlay starts from it.
echo '/dev/vda / ext4 defaults 0 0' >"$root/etc/fstab"
install -D -m 0644 "$here/guest/containerd-config.toml" "$root/etc/containerd/config.toml"
install -D -m 0755 "$here/guest/e2e-init" "$root/usr/local/sbin/e2e-init"
# A fixed machine id: an empty one makes every first boot a "first boot", on which systemd
# presets every unit, which would undo the masks below and slow the boot.
echo "$key" | sha256sum | cut -c1-32 >"$root/etc/machine-id"
# The journal is kept on disk, so the reboot scenario can read the previous boot.
mkdir -p "$root/var/log/journal"
# A test VM that stops within seconds: a container whose PID 1 ignores SIGTERM would otherwise
# hold the power-off for the default 90 s.
mkdir -p "$root/etc/systemd/system.conf.d"
printf '[Manager]\nDefaultTimeoutStopSec=10s\n' >"$root/etc/systemd/system.conf.d/e2e.conf"
# A root login on the serial console without a password, for debugging a scenario by hand.
chroot "$root" passwd -d root >/dev/null
# Timers and jobs that do nothing useful in a VM that lives for one minute, and would compete
# with the scenario for the emulated CPU if they fired.
systemctl --root="$root" mask --quiet apt-daily.timer apt-daily-upgrade.timer \
  dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
  mdmonitor-oneshot.timer mdcheck_start.timer mdcheck_continue.timer 2>/dev/null || true
# Without dbus and logind, getty-static starts gettys on tty2-6 of a VM with no screen; the
# serial console keeps its getty. nvme-cli's NVMe-oF autoconnect has nothing to connect.
systemctl --root="$root" mask --quiet getty-static.service getty@tty1.service \
  nvmf-autoconnect.service
# Early-boot units for facilities no scenario touches (KMS, EFI pstore, FUSE, configfs, binfmt,
# debugfs, tracefs, huge pages, online XFS scrubbing). Each costs seconds of emulated CPU in the
# window where ctrvol-setup runs; none of them is ordered against ctrvol or containerd.
systemctl --root="$root" mask --quiet modprobe@drm.service modprobe@efi_pstore.service \
  modprobe@fuse.service sys-fs-fuse-connections.mount modprobe@configfs.service \
  sys-kernel-config.mount systemd-binfmt.service proc-sys-fs-binfmt_misc.automount \
  sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount xfs_scrub_all.timer

# --- The AMI's image cache: containerd in the chroot, once ----------------------------------
log "caching the pause image in k8s.io"
cp "$work/images/pause.tar" "$work/images/app.tar" "$root/tmp/"
cat >"$root/tmp/bake-containerd.toml" <<'TOML'
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
# Only the image store and the snapshotter are needed to import; the CRI plugin would set up
# networking and cgroups on the build host.
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
]
[grpc]
  address = "/run/containerd/containerd.sock"
TOML
mount_in_root proc /proc
mount_in_root tmpfs /run
[[ -c $root/dev/null ]] || fail "$root/dev/null missing after debootstrap"
chroot "$root" /usr/bin/containerd --config /tmp/bake-containerd.toml \
  >"$work/bake-containerd.log" 2>&1 &
containerd_pid=$!
ctr=(chroot "$root" /usr/bin/ctr --address /run/containerd/containerd.sock --namespace k8s.io)
for _ in $(seq 1 120); do
  "${ctr[@]}" version >/dev/null 2>&1 && break
  kill -0 "$containerd_pid" 2>/dev/null || {
    cat "$work/bake-containerd.log" >&2
    fail "containerd in the chroot exited"
  }
  sleep 0.5
done
"${ctr[@]}" version >/dev/null
# What the AL2023 build does with the pulled image: name it, pin it, export it for nodeadm's
# fallback import.
"${ctr[@]}" images import /tmp/pause.tar
"${ctr[@]}" images import /tmp/app.tar
"${ctr[@]}" images label localhost/kubernetes/pause:latest io.cri-containerd.pinned=pinned
mkdir -p "$root/etc/eks"
"${ctr[@]}" images export /etc/eks/pause.tar localhost/kubernetes/pause:latest
"${ctr[@]}" images ls
kill "$containerd_pid"
wait "$containerd_pid" || true
containerd_pid=''
unmount_all
rm -f "$root/tmp/pause.tar" "$root/tmp/app.tar" "$root/tmp/bake-containerd.toml"
# containerd's state from the chroot run is on the tmpfs just unmounted; nothing of the build
# host may leak into the image.
rm -rf "${root:?}/run/"*

# ConditionNeedsUpdate= units (ldconfig, the journal catalog, systemd-update-done) would
# otherwise run at the first boot of every overlay: the image build has just done their work.
touch "$root/etc/.updated" "$root/var/.updated"

# --- The disk image -------------------------------------------------------------------------
log "writing the disk image"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
kernel=$(find "$root/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -1)
initrd=$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | sort -V | tail -1)
[[ -n $kernel && -n $initrd ]] || fail "no kernel or initrd under $root/boot"
cp "$kernel" "$work/image/vmlinuz"
cp "$initrd" "$work/image/initrd.img"
# shellcheck disable=SC2016 # ${Package} is dpkg-query's format, not the shell's.
versions=$(chroot "$root" dpkg-query -W -f='    "${Package}": "${Version}",\n' \
  linux-image-amd64 systemd containerd runc nodejs xfsprogs)
# mke2fs -d copies the tree (owners, modes, xattrs, hard links, device nodes) into a new
# filesystem image without mounting anything.
mke2fs -q -t ext4 -L e2e-root -d "$root" "$work/base.raw" 3G
qemu-img convert -f raw -O qcow2 "$work/base.raw" "$work/image/base.qcow2"
rm -f "$work/base.raw"
cat >"$work/image/manifest.json" <<JSON
{
  "key": "$key",
  "suite": "$suite",
  "kernel": "$(basename "$kernel")",
  "packages": {
${versions%,}
  },
  "builtInSeconds": $((SECONDS - started))
}
JSON
mv "$work/image" "$out"
log "done in $((SECONDS - started)) s: $out"
