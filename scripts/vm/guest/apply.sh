#!/bin/bash
# Applies a scenario's seed to the guest's root filesystem. Run by e2e-init (PID 1, before
# systemd starts) on the first boot of a scenario's overlay, as `apply.sh SEED_DIR`.
#
# The seed holds:
#   e2e/           the runner, its library, the scenario script and scenario.env, copied to
#                  /usr/local/lib/e2e
#   ctrvol/        dist/ctrvol.cjs, systemd/ and packaging/, laid out as in the repository
#   ctrvol.tar.gz  the same, as the release tarball a user-data script downloads
#   bake           present when ctrvol is to be installed now, as an image build would
#   bake-config.yaml  the /etc/ctrvol/config.yaml written before install.sh (which keeps it)
#   mask           units never to start in this scenario, one per line
set -euo pipefail
seed=${1:?usage: apply.sh SEED_DIR}
lib=/usr/local/lib/e2e

mkdir -p "$lib" /var/lib/e2e/out
cp -a "$seed/e2e/." "$lib/"
cp -a "$seed/ctrvol" "$lib/ctrvol"
cp -a "$seed/ctrvol.tar.gz" "$lib/ctrvol.tar.gz"
install -m 0644 "$lib/e2e-run.service" /etc/systemd/system/e2e-run.service
# Enabled by hand: the runner is the test's, and a plain symlink is all `enable` would write.
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -sf ../e2e-run.service /etc/systemd/system/multi-user.target.wants/e2e-run.service
if [[ -d $seed/udev ]]; then
  cp -a "$seed/udev/." /etc/udev/rules.d/
fi

if [[ -e $seed/bake ]]; then
  echo "apply: installing ctrvol as an image build would (systemd is not running yet)"
  install -D -m 0644 "$seed/bake-config.yaml" /etc/ctrvol/config.yaml
  bash "$lib/ctrvol/packaging/install.sh" "$lib/ctrvol/dist/ctrvol.cjs"
fi
if [[ -e $seed/mask ]]; then
  # Offline, as install.sh enables: systemd is not running yet.
  xargs -r systemctl --root=/ mask --quiet <"$seed/mask"
fi
echo "apply: done"
