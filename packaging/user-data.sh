MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="//ctrvol//"

Example EC2 user-data that installs ctrvol late, on an AL2023 EKS node launched from a stock
AMI, and moves containerd's store onto the volume attached as xvdb. Text here, before the first
boundary, is the MIME preamble: cloud-init ignores it, which is why the notes live here and in
the shell part rather than above the headers.

Where it runs: cloud-init runs shell parts in cloud-final.service, after nodeadm-config and
before nodeadm-run (which is ordered after cloud-final). containerd may already be running from
the AMI; `ctrvol setup` stops it and the kubelet, carries /var/lib/containerd onto the volume,
mounts it and starts them again. On later boots ctrvol-setup.service does the same work before
containerd starts.

Karpenter and EKS managed node groups append their own parts (the NodeConfig for nodeadm) after
these; keep this part a shell script and leave the boundary as it is.

--//ctrvol//
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/bash
set -euo pipefail

# A release tarball holding dist/ctrvol.cjs, systemd/ and packaging/, as in the repository.
# Replace with your own copy: the instance role needs s3:GetObject on it.
bundle_url=s3://example-bucket/ctrvol/ctrvol-0.1.0.tar.gz

# Written before install.sh runs, which then keeps it instead of the example config.
mkdir -p /etc/ctrvol
cat >/etc/ctrvol/config.yaml <<'EOF'
volume:
  device: /dev/xvdb
  filesystem: xfs
onFailure: block
EOF

# AL2023 installs Node.js versions side by side and points /usr/bin/node at one of them;
# the bundle runs under whichever `node` is active, and needs 20 or later.
if ! command -v node >/dev/null; then
  dnf install -y nodejs20
fi

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
aws s3 cp --only-show-errors "$bundle_url" "$workdir/ctrvol.tar.gz"
tar -xzf "$workdir/ctrvol.tar.gz" -C "$workdir"

# Installs /usr/bin/ctrvol and the unit, and enables the unit so that every later boot mounts
# the volume before containerd starts.
"$workdir/packaging/install.sh" "$workdir/dist/ctrvol.cjs"

# Run directly rather than through `systemctl start ctrvol-setup.service`, so that its output
# and exit code land in this part's log (/var/log/cloud-init-output.log) and a failure fails
# the part. The boot unit may still start in parallel when containerd is started (it is wanted
# by containerd.service); the two runs share a lock, and the second finds the work done.
/usr/bin/ctrvol setup

--//ctrvol//--
