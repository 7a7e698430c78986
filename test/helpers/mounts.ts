import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

export interface MountEntry {
  id: number;
  parentId: number;
  /** `major:minor` of the mounted filesystem, the one reliable link back to a block device. */
  device: string;
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
}

// mountinfo escapes space, tab, newline and backslash as octal so that its fields stay
// whitespace-separated.
function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(parseInt(octal, 8)),
  );
}

export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    // Optional fields end at a lone '-', so the filesystem part is found from there.
    const dash = fields.indexOf('-', 6);
    if (dash < 0 || fields.length < dash + 3) {
      throw new Error(`unexpected /proc/self/mountinfo line: ${line}`);
    }
    entries.push({
      id: Number(fields[0]),
      parentId: Number(fields[1]),
      device: fields[2] ?? '',
      root: unescapeOctal(fields[3] ?? ''),
      mountPoint: unescapeOctal(fields[4] ?? ''),
      fsType: fields[dash + 1] ?? '',
      source: unescapeOctal(fields[dash + 2] ?? ''),
    });
  }
  return entries;
}

export async function readMounts(): Promise<MountEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

function isAtOrUnder(candidate: string, dir: string): boolean {
  const rel = path.relative(dir, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Mounts whose mount point is `dir` or lies below it, deepest (most recently stacked) first. */
export async function mountsUnder(dir: string): Promise<MountEntry[]> {
  const resolved = path.resolve(dir);
  const mounts = await readMounts();
  // mountinfo lists mounts in the order they were made, so reversing it unmounts children and
  // stacked mounts before whatever they sit on.
  return mounts.filter((m) => isAtOrUnder(m.mountPoint, resolved)).reverse();
}

/** Ids of the mounts at or below the given directories right now. */
export async function mountIdsUnder(dirs: readonly string[]): Promise<Set<number>> {
  const found = (await Promise.all(dirs.map((d) => mountsUnder(d)))).flat();
  return new Set(found.map((m) => m.id));
}

/**
 * Unmounts everything at or below the given directories, except the mounts in `keep` (for
 * instance a test's own volume mounted where containerd keeps its root). Callers only pass
 * directories they created, so whatever else is mounted there was mounted by the test run.
 */
export async function unmountAllUnder(
  dirs: readonly string[],
  keep: ReadonlySet<number> = new Set(),
): Promise<string[]> {
  const unmounted: string[] = [];
  const pending = async (): Promise<MountEntry[]> =>
    (await Promise.all(dirs.map((d) => mountsUnder(d)))).flat().filter((m) => !keep.has(m.id));
  // Bounded, because a mount that keeps coming back would otherwise spin forever.
  for (let round = 0; round < 200; round += 1) {
    const first = (await pending())[0];
    if (first === undefined) return unmounted;
    await execa('umount', [first.mountPoint], { stdin: 'ignore' });
    unmounted.push(first.mountPoint);
  }
  const left = await pending();
  if (left.length > 0) {
    throw new Error(`mounts left under ${dirs.join(', ')}: ${left.map((m) => m.mountPoint)}`);
  }
  return unmounted;
}
