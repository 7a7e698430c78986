import { access, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { readJson, writeJsonDurably } from '../../state/files.js';
import { copyStartedMarker, inServiceMarker } from '../../state/paths.js';
import { act, getVolume } from '../context.js';
import { alreadyDone, changed, type Step } from '../step.js';
import { isMountedAtMountPoint } from './quiesce.js';

export const mountStep: Step = {
  name: 'mount',
  async run(context, logger) {
    const { mountPoint, mountOptions } = context.config.volume;
    const { device, signatures } = getVolume(context);
    if (isMountedAtMountPoint(context)) {
      return alreadyDone(`${device.path} is already mounted at ${mountPoint}`);
    }

    await act(context, logger, `mount ${device.path} at ${mountPoint}`, async () => {
      await mkdir(mountPoint, { recursive: true });
      await context.run.run('mount', [
        '-t',
        signatures.fsType ?? context.config.volume.filesystem,
        '-o',
        mountOptions.join(','),
        device.path,
        mountPoint,
      ]);

      // A fresh filesystem's root has no SELinux label; containerd and the kubelet then fail
      // with AVC denials on an enforcing host until the mount point is relabelled.
      if (await isSelinuxEnabled(context.host.sys)) {
        await context.run.run('restorecon', ['-F', mountPoint], { packageHint: 'policycoreutils' });
      }

      // From now on the volume is the store: containerd writes to it, and the copy step will
      // never again compare it with what lies hidden on the root disk. The record of a copy
      // under way, left until now (see markPreserved), goes with the same directory sync.
      const inService = path.join(mountPoint, inServiceMarker);
      if ((await readJson(inService)) === undefined) {
        await rm(path.join(mountPoint, copyStartedMarker), { force: true });
        await writeJsonDurably(inService, { at: new Date().toISOString() });
      }
    });

    return changed(`UUID ${signatures.uuid ?? 'unknown'}`);
  },
};

export function isSelinuxEnabled(sys: string): Promise<boolean> {
  return access(`${sys}/fs/selinux/enforce`).then(
    () => true,
    () => false,
  );
}
