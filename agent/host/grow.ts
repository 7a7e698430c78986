import type { Runner } from '../exec.js';
import { formatBytes } from '../text.js';

export interface GrowResult {
  grown: boolean;
  beforeBytes: number;
  afterBytes: number;
  deviceBytes: number;
}

// mkfs rounds the filesystem down to whole blocks and allocation groups; only a gap beyond that
// means the volume itself was enlarged (an EBS ModifyVolume).
const slackBytes = 64 * 1024 * 1024;

/**
 * Grows a mounted filesystem to fill its device when the device grew. Both filesystems grow
 * online: xfs_growfs works on the mount point, resize2fs on the mounted device.
 */
export async function growIfDeviceGrew(
  run: Runner,
  options: { fsType: string; device: string; mountPoint: string; deviceBytes: number },
): Promise<GrowResult> {
  const beforeBytes = await getFilesystemBytes(run, options);
  const result = {
    grown: false,
    beforeBytes,
    afterBytes: beforeBytes,
    deviceBytes: options.deviceBytes,
  };
  if (options.deviceBytes - beforeBytes <= slackBytes) {
    return result;
  }

  if (options.fsType === 'xfs') {
    await run.run('xfs_growfs', [options.mountPoint], { packageHint: 'xfsprogs' });
  } else {
    await run.run('resize2fs', [options.device], { packageHint: 'e2fsprogs' });
  }

  return { ...result, grown: true, afterBytes: await getFilesystemBytes(run, options) };
}

export function describeGrowth(result: GrowResult): string {
  return `grew the filesystem from ${formatBytes(result.beforeBytes)} to ${formatBytes(result.afterBytes)}`;
}

/** The filesystem's own idea of its size, which statfs does not give (it leaves out metadata). */
async function getFilesystemBytes(
  run: Runner,
  options: { fsType: string; device: string; mountPoint: string },
): Promise<number> {
  if (options.fsType === 'xfs') {
    const { stdout } = await run.run('xfs_info', [options.mountPoint], { packageHint: 'xfsprogs' });
    const data = /^data\s+=\s+bsize=(\d+)\s+blocks=(\d+)/m.exec(stdout);
    if (data === null) {
      throw new Error(`cannot read the data section from xfs_info ${options.mountPoint}`);
    }

    return Number(data[1]) * Number(data[2]);
  }

  const { stdout } = await run.run('dumpe2fs', ['-h', options.device], {
    packageHint: 'e2fsprogs',
  });
  const count = /^Block count:\s+(\d+)/m.exec(stdout);
  const size = /^Block size:\s+(\d+)/m.exec(stdout);
  if (count === null || size === null) {
    throw new Error(`cannot read the block count from dumpe2fs -h ${options.device}`);
  }

  return Number(count[1]) * Number(size[1]);
}
