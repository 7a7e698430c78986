import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  getMonitorDropInInputs,
  monitorDropInPath,
  renderMonitorDropIn,
} from '../../metrics/monitor-dropin.js';
import {
  containerdDropInPath,
  kubeletDropInPath,
  renderContainerdDropIn,
  renderKubeletDropIn,
} from '../../systemd/units.js';
import { act, getVolume, getVolumeFilesystem } from '../context.js';
import { alreadyDone, changed, type Step } from '../step.js';

/**
 * containerd learns to wait for ctrvol-setup at every boot, and so does the kubelet while
 * volume.bindMounts binds its directories. Only drop-ins are written: no fstab line and no .mount
 * unit, so a device missing at boot cannot stall the boot. The monitor's drop-in opens the paths
 * the config names (mount point, metrics folders) in its otherwise read-only sandbox.
 */
export const wireStep: Step = {
  name: 'wire',
  async run(context, logger) {
    const { config, paths } = context;
    // The filesystem on the volume, not the configured one: resize2fs needs the device writable
    // on a reused ext4 volume even when the config says xfs.
    const monitor = getMonitorDropInInputs(config, getVolumeFilesystem(context));
    // The kernel name, not a mapping-name symlink: DeviceAllow= wants the node itself, and setup
    // rewrites this at every boot, when NVMe names may have moved.
    const devices = monitor.writesDevice ? [getVolume(context).device.path] : [];
    const kubelet =
      config.volume.bindMounts.length > 0 ? renderKubeletDropIn(config.onFailure) : null;
    // null: the file must not be there.
    const wanted = new Map<string, string | null>([
      [path.join(paths.root, containerdDropInPath), renderContainerdDropIn(config.onFailure)],
      [path.join(paths.root, kubeletDropInPath), kubelet],
      [path.join(paths.root, monitorDropInPath), renderMonitorDropIn(monitor.paths, devices)],
    ]);
    const stale: string[] = [];
    const extra: string[] = [];
    for (const [file, text] of wanted) {
      const current = await readFile(file, 'utf8').catch(() => null);
      if (current !== text) {
        (text === null ? extra : stale).push(file);
      }
    }

    if (stale.length === 0 && extra.length === 0) {
      return alreadyDone('the drop-ins are up to date');
    }

    const description = [
      ...(stale.length === 0 ? [] : [`write ${stale.join(', ')}`]),
      ...(extra.length === 0 ? [] : [`remove ${extra.join(', ')}`]),
    ].join('; ');
    await act(context, logger, description, async () => {
      for (const file of stale) {
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(file, wanted.get(file) as string, { mode: 0o644 });
      }

      for (const file of extra) {
        await rm(file, { force: true });
      }

      if (context.systemd) {
        await context.run.run('systemctl', ['daemon-reload']);
      }
    });

    return changed();
  },
};
