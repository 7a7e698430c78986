#!/bin/bash
# Scenario 5: ctrvol installed late, from EC2 user data, on a node whose containerd already runs
# on the root disk. The user data is the shell part of packaging/user-data.sh as shipped, with
# two stand-ins for what an EC2 instance has and this VM does not:
#   - `aws s3 cp` copies the release tarball from the seed instead of downloading it;
#   - a udev rule names the data volume /dev/xvdb, as amazon-ec2-utils' rules do from the block
#     device mapping name stored in the NVMe controller data.
set -euo pipefail
# shellcheck source=/dev/null
source "$E2E_LIB/lib.sh"

wait_containerd
snapshot before
record containerd-before.txt systemctl show containerd.service -p MainPID,ActiveState \
  -p ActiveEnterTimestampMonotonic

stand_in=$(mktemp -d)
cat >"$stand_in/aws" <<'AWS'
#!/bin/bash
# aws s3 cp [--only-show-errors] SRC DST -> the local release tarball to DST.
set -euo pipefail
dst=${*: -1}
cp /usr/local/lib/e2e/ctrvol.tar.gz "$dst"
AWS
chmod +x "$stand_in/aws"

# The shell part: everything after its Content-Type header, up to the closing boundary.
awk '/^Content-Type: text\/x-shellscript/ { part = 1; next }
     /^--\/\/ctrvol\/\/--/ { part = 0 }
     part' "$E2E_LIB/ctrvol/packaging/user-data.sh" | sed '1{/^$/d}' >"$E2E_OUT/user-data-part.sh"

say "running the user-data part"
record user-data.log env PATH="$stand_in:$PATH" bash "$E2E_OUT/user-data-part.sh"
wait_containerd

snapshot after
record containerd-after.txt systemctl show containerd.service -p MainPID,ActiveState \
  -p ActiveEnterTimestampMonotonic
record ctrvol-status.txt systemctl status ctrvol-setup.service --no-pager --lines=40
record ctrvol-journal.txt journalctl -b -u ctrvol-setup.service -o short-monotonic --no-pager
record ctrvol-status-cmd.json ctrvol status --json
record xvdb.txt readlink -f /dev/xvdb
pod after-install
