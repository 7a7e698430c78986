import { readdir, statfs } from 'node:fs/promises';
import type { Runner } from '../exec.js';

export interface TreeSize {
  /** Allocated bytes, hard links counted once, holes in sparse files not counted. */
  bytes: number;
  inodes: number;
}

export async function measureTree(run: Runner, dir: string): Promise<TreeSize> {
  const [bytes, inodes] = await Promise.all([
    run.run('du', ['--summarize', '--one-file-system', '--block-size=1', dir]),
    run.run('du', ['--summarize', '--one-file-system', '--inodes', dir]),
  ]);

  return { bytes: parseDu(bytes.stdout), inodes: parseDu(inodes.stdout) };
}

function parseDu(text: string): number {
  return Number(text.split('\t')[0]);
}

export interface FreeSpace {
  bytes: number;
  inodes: number;
}

export async function getFreeSpace(dir: string): Promise<FreeSpace> {
  const stats = await statfs(dir);
  return { bytes: stats.bavail * stats.bsize, inodes: stats.ffree };
}

// Directories, xattrs and metadata take a little more room on the new filesystem than du counted
// on the old one, so the copy must fit with a margin.
export function getNeededSpace(size: TreeSize): FreeSpace {
  return { bytes: Math.ceil(size.bytes * 1.05) + 32 * 1024 * 1024, inodes: size.inodes + 1024 };
}

/** What is at a directory on the root disk, or null when there is nothing there. */
export async function measureSource(run: Runner, dir: string): Promise<TreeSize | null> {
  const entries = await readdir(dir).catch(() => []);
  return entries.length === 0 ? null : measureTree(run, dir);
}

/**
 * Room a new filesystem leaves on a device, before it exists, on the low side: xfs keeps its log
 * and allocation-group headers (a 300 MB xfs offers about 88 %); ext4 its journal, inode tables
 * and 5 % reserved for root (a 100 MiB ext4 offers about 81 %). Only used to refuse before mkfs;
 * the real free space is checked again once the volume is mounted.
 */
export function estimateUsableBytes(deviceBytes: number, filesystem: 'xfs' | 'ext4'): number {
  return Math.floor(deviceBytes * (filesystem === 'xfs' ? 0.85 : 0.78));
}
