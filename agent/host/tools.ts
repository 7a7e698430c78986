import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { EnvironmentError } from '../errors.js';

/**
 * Checks that every program a run will need is on PATH before the run changes anything: a
 * missing getfattr found only after mkfs and the copy would leave a half-done setup behind.
 */
export function checkTools(tools: Record<string, string>): void {
  const dirs = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean);
  const missing: string[] = [];
  for (const [tool, from] of Object.entries(tools)) {
    if (!dirs.some((dir) => isExecutable(path.join(dir, tool)))) {
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

/** A stat of a local path: quicker done in place than through the thread pool, ten at a time. */
function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
