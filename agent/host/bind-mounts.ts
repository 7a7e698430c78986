import { getBindFolder } from '../state/paths.js';
import { getMountAt, type MountEntry } from './mountinfo.js';

/**
 * What is at a directory of volume.bindMounts now:
 *   bound     ctrvol's folder for it, from the volume with these device numbers
 *   unbound   nothing is mounted there
 *   occupied  something else is, which ctrvol never mounts over
 */
export type BindState =
  | { kind: 'bound'; mount: MountEntry }
  | { kind: 'unbound' }
  | { kind: 'occupied'; mount: MountEntry };

/**
 * A bind mount shows in mountinfo with the volume's device numbers and, as its root, the folder
 * inside the volume it was made from. Both must match: the device numbers alone would take the
 * volume itself, or a bind of some other folder on it, for ctrvol's own.
 */
export function isOwnBind(entry: MountEntry, majorMinor?: string): boolean {
  return (
    (majorMinor === undefined || entry.majorMinor === majorMinor) &&
    entry.root === `/${getBindFolder(entry.mountPoint)}`
  );
}

export function getBindState(
  mounts: readonly MountEntry[],
  directory: string,
  majorMinor: string,
): BindState {
  const mount = getMountAt(mounts, directory);
  if (mount === undefined) {
    return { kind: 'unbound' };
  }

  return isOwnBind(mount, majorMinor) ? { kind: 'bound', mount } : { kind: 'occupied', mount };
}
