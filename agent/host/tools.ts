import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { EnvironmentError } from '../errors.js';

/**
 * Checks that every program a run will need is on PATH before the run changes anything: a
 * missing getfattr found only after mkfs and the copy would leave a half-done setup behind.
 */
export async function checkTools(tools: Record<string, string>): Promise<void> {
  const dirs = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean);
  const missing: string[] = [];
  for (const [tool, from] of Object.entries(tools)) {
    const found = await Promise.all(
      dirs.map((dir) =>
        access(path.join(dir, tool), constants.X_OK).then(
          () => true,
          () => false,
        ),
      ),
    );
    if (!found.includes(true)) {
      missing.push(`${tool} (${from})`);
    }
  }

  if (missing.length > 0) {
    throw new EnvironmentError(`required tools not found: ${missing.join(', ')}`, {
      hint: 'install them; nothing was changed',
    });
  }
}

/** What `ctrvol setup` runs, with the package that brings each one. */
export function getSetupTools(filesystem: 'xfs' | 'ext4'): Record<string, string> {
  const forFilesystem: Record<string, string> =
    filesystem === 'xfs'
      ? { 'mkfs.xfs': 'xfsprogs', xfs_info: 'xfsprogs', xfs_growfs: 'xfsprogs' }
      : { 'mkfs.ext4': 'e2fsprogs', dumpe2fs: 'e2fsprogs', resize2fs: 'e2fsprogs' };

  return {
    blkid: 'util-linux',
    wipefs: 'util-linux',
    mount: 'mount',
    umount: 'mount',
    ...forFilesystem,
    cp: 'coreutils',
    du: 'coreutils',
    sync: 'coreutils',
    find: 'findutils',
    getfattr: 'attr',
  };
}
