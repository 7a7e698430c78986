import { getBlockDevice } from '../host/block.js';
import type { Host } from '../host/host.js';
import { getMountAt, readMountInfo, type MountEntry } from '../host/mountinfo.js';
import { measureFilesystem, type FilesystemUsage } from '../host/usage.js';
import { readState, type SetupState } from '../state/state.js';

/** The state of the two filesystems that matter, as the monitor and `ctrvol check` see it. */
export interface Inspection {
  root: FilesystemUsage;
  volume: FilesystemUsage | undefined;
  mountPoint: string;
  mount: MountEntry | undefined;
  mounted: boolean;
  readOnly: boolean;
  setup: SetupState | undefined;
  /** One phrase per problem, for the log, `check` and `status`. */
  problems: string[];
}

/**
 * Reads mountinfo and statfs, nothing more: cheap enough for every tick. "Mounted where it
 * should be" means the device ctrvol recorded is the one at the mount point now; on a node
 * never set up, any filesystem other than the root's will do.
 */
export async function inspect(
  host: Host,
  stateFile: string,
  mountPoint: string,
  warn: { root: number; volume: number },
): Promise<Inspection> {
  const setup = await readState(stateFile);
  const mounts = readMountInfo(host);
  const rootMount = getMountAt(mounts, '/');
  const mount = getMountAt(mounts, mountPoint);
  const expected =
    setup === undefined
      ? undefined
      : await getBlockDevice(host, setup.device).catch(() => undefined);
  const mounted =
    mount !== undefined &&
    (expected === undefined
      ? setup === undefined && mount.majorMinor !== rootMount?.majorMinor
      : mount.majorMinor === expected.majorMinor);
  // The kernel turns a filesystem read-only after I/O errors in its superblock options. The
  // per-mount options are no guide: the monitor's sandbox binds every path it need not write
  // read-only, and a `mount -o remount,ro` by an operator is not a fault.
  const readOnly = mounted && mount.superOptions.split(',').includes('ro');
  const root = await measureFilesystem('/');
  const volume = mounted ? await measureFilesystem(mountPoint) : undefined;

  const problems: string[] = [];
  if (!mounted) {
    problems.push(`the volume is not mounted at ${mountPoint}`);
  } else if (readOnly) {
    problems.push(`the volume at ${mountPoint} is read-only (I/O errors?)`);
  }

  if (getPercent(root) >= warn.root) {
    problems.push(`the root filesystem is ${getPercent(root)}% full`);
  }

  if (volume !== undefined && getPercent(volume) >= warn.volume) {
    problems.push(`the volume is ${getPercent(volume)}% full`);
  }

  return { root, volume, mountPoint, mount, mounted, readOnly, setup, problems };
}

/** The fuller of blocks and inodes: running out of either stops image pulls alike. */
export function getPercent(usage: FilesystemUsage): number {
  return Math.max(usage.percent, usage.inodePercent);
}
