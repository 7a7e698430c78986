import { statfs } from 'node:fs/promises';

/** How full a filesystem is, measured the way the kubelet measures its image filesystem. */
export interface FilesystemUsage {
  totalBytes: number;
  /** What an unprivileged writer can still use: ext4's reserved blocks count as used. */
  availableBytes: number;
  usedBytes: number;
  percent: number;
  totalInodes: number;
  freeInodes: number;
  inodePercent: number;
}

export async function measureFilesystem(dir: string): Promise<FilesystemUsage> {
  const stats = await statfs(dir);
  const totalBytes = stats.blocks * stats.bsize;
  const availableBytes = stats.bavail * stats.bsize;
  const usedBytes = totalBytes - availableBytes;
  const usedInodes = stats.files - stats.ffree;

  return {
    totalBytes,
    availableBytes,
    usedBytes,
    percent: totalBytes === 0 ? 0 : round((usedBytes / totalBytes) * 100),
    totalInodes: stats.files,
    freeInodes: stats.ffree,
    inodePercent: stats.files === 0 ? 0 : round((usedInodes / stats.files) * 100),
  };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
