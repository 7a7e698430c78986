import type { Config } from '../config/schema.js';

/**
 * What ctrvol writes into systemd's configuration. ctrvol-setup is the only thing that mounts
 * the volume: there is no fstab line and no enabled .mount unit, because a device missing at
 * boot (an instance store after stop/start, a late EBS attach) must not stall the boot or fail
 * containerd before ctrvol has had a chance to wait for it and say what is wrong.
 */
export const setupUnit = 'ctrvol-setup.service';

/** Units whose data lives under the mount point, in the order they are stopped. */
export const dependentUnits = ['kubelet.service', 'containerd.service'] as const;

export const containerdDropInPath = 'etc/systemd/system/containerd.service.d/10-ctrvol.conf';

export function renderContainerdDropIn(onFailure: Config['onFailure']): string {
  // With `block`, a failed setup keeps containerd down rather than letting it start on the root
  // disk, where it would find no cached sandbox image and fill the root filesystem. With
  // `rootDisk` the node still comes up, and the setup unit's failure stays visible in
  // `systemctl --failed`.
  return renderDropIn(
    onFailure === 'block'
      ? ['containerd must not start unless its volume is mounted.', 'Requires']
      : ['onFailure: rootDisk, so containerd starts even if setup fails.', 'Wants'],
  );
}

/** Only there while volume.bindMounts names directories; setup removes it when it does not. */
export const kubeletDropInPath = 'etc/systemd/system/kubelet.service.d/10-ctrvol.conf';

export function renderKubeletDropIn(onFailure: Config['onFailure']): string {
  // The same rule as containerd's: with `block`, a kubelet started before its directories are
  // bound would write into the root disk what the bind then hides.
  return renderDropIn(
    onFailure === 'block'
      ? ['the kubelet must not start unless its directories are bound from the volume.', 'Requires']
      : ['onFailure: rootDisk, so the kubelet starts even if setup fails.', 'Wants'],
  );
}

function renderDropIn([why, dependency]: [string, 'Requires' | 'Wants']): string {
  return [
    '# Written by ctrvol setup; rewritten on every run.',
    `# ${why}`,
    '[Unit]',
    `${dependency}=${setupUnit}`,
    `After=${setupUnit}`,
    '',
  ].join('\n');
}
