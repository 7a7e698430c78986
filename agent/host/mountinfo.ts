import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Host } from './host.js';

/** One line of /proc/self/mountinfo (see proc(5)). */
export interface MountEntry {
  id: number;
  parentId: number;
  /** "major:minor" of the filesystem's device; 0:N for virtual filesystems. */
  majorMinor: string;
  /** The directory inside the filesystem that is mounted, "/" unless it is a bind mount. */
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  /** The superblock's options: an ext4 or xfs that hit I/O errors shows "ro" here. */
  superOptions: string;
}

/**
 * Read synchronously: the kernel writes the table from memory, and a run reads it several times
 * (each step checks the mounts afresh rather than trusting an earlier look).
 */
export function readMountInfo(host: Host): MountEntry[] {
  const text = readFileSync(path.join(host.proc, 'self/mountinfo'), 'utf8');
  return parseMountInfo(text);
}

export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      continue;
    }

    // Optional fields sit between field 6 and a lone "-", so split the line there first.
    const [before, after] = line.split(' - ');
    const fields = before?.split(' ') ?? [];
    const tail = after?.split(' ') ?? [];
    if (fields.length < 6 || tail.length < 2) {
      continue;
    }

    entries.push({
      id: Number(fields[0]),
      parentId: Number(fields[1]),
      majorMinor: fields[2] ?? '',
      root: unescapeOctal(fields[3] ?? ''),
      mountPoint: unescapeOctal(fields[4] ?? ''),
      options: fields[5] ?? '',
      fsType: tail[0] ?? '',
      source: unescapeOctal(tail[1] ?? ''),
      superOptions: tail[2] ?? '',
    });
  }

  return entries;
}

/** The kernel writes space, tab, newline and backslash in paths as \040-style octal escapes. */
function unescapeOctal(value: string): string {
  return value.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(parseInt(octal, 8)),
  );
}

/** The mount now visible at a path: the last one stacked there wins. */
export function getMountAt(
  mounts: readonly MountEntry[],
  mountPoint: string,
): MountEntry | undefined {
  return mounts.findLast((entry) => entry.mountPoint === mountPoint);
}

/** Mounts strictly below a directory, such as container rootfs mounts under containerd's root. */
export function getMountsBeneath(mounts: readonly MountEntry[], dir: string): MountEntry[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return mounts.filter((entry) => entry.mountPoint.startsWith(prefix));
}
