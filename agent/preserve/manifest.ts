import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { Runner } from '../exec.js';

/**
 * A description of a tree precise enough to prove a copy complete: for every entry its type,
 * mode, owner, size, mtime (to the nanosecond), link target, device numbers, hard-link group and
 * xattr names, and optionally a content hash.
 *
 * find(1) and getfattr(1) walk the tree: a walk in Node would cost more than the whole of ctrvol's
 * own budget at boot on a store of tens of thousands of files, and Node has no xattr call.
 */
export type Manifest = Map<string, string>;

export interface ManifestOptions {
  /** Top-level names to leave out, such as ctrvol's own .ctrvol folder on the volume. */
  exclude?: ReadonlySet<string>;
  content?: boolean;
}

// Type, mode, uid, gid, size, mtime, link count, inode, link target, path: NUL after each, since
// paths and link targets may hold any other byte.
const findFormat = '%y\\0%m\\0%U\\0%G\\0%s\\0%T@\\0%n\\0%i\\0%l\\0%P\\0';
const fieldCount = 10;

export async function buildManifest(
  run: Runner,
  dir: string,
  options: ManifestOptions = {},
): Promise<Manifest> {
  const exclude = options.exclude ?? new Set<string>();
  const isExcluded = (relative: string) => exclude.has(relative.split('/')[0] ?? '');
  const listing = await run.run('find', [dir, '-xdev', '-printf', findFormat]);
  const fields = listing.stdout.split('\0');
  const entries: {
    relative: string;
    type: string;
    record: string[];
    inode: string;
    links: number;
  }[] = [];
  for (let index = 0; index + fieldCount <= fields.length; index += fieldCount) {
    const [type, mode, uid, gid, size, mtime, links, inode, target, relative] = fields.slice(
      index,
      index + fieldCount,
    ) as [string, string, string, string, string, string, string, string, string, string];
    if (relative !== '' && isExcluded(relative)) {
      continue;
    }

    // A directory's size is an artefact of its filesystem, not of its contents.
    const shownSize = type === 'd' ? '-' : size;
    entries.push({
      relative,
      type,
      inode,
      links: Number(links),
      record: [type, mode, `${uid}:${gid}`, shownSize, mtime, target],
    });
  }

  // Inode numbers differ between filesystems; what must match is which paths share one.
  const groups = new Map<string, string>();
  for (const entry of entries) {
    if (entry.type !== 'd' && entry.links > 1) {
      const first = groups.get(entry.inode);
      if (first === undefined || entry.relative < first) {
        groups.set(entry.inode, entry.relative);
      }
    }
  }

  const xattrs = await listXattrNames(run, dir);
  const manifest: Manifest = new Map();
  for (const entry of entries) {
    const absolute = path.join(dir, entry.relative);
    const extra = [
      `link=${entry.type !== 'd' && entry.links > 1 ? groups.get(entry.inode) : ''}`,
      `xattr=${xattrs.get(absolute) ?? ''}`,
    ];
    if (entry.type === 'c' || entry.type === 'b') {
      const { rdev } = await lstat(absolute, { bigint: true });
      extra.push(`rdev=${rdev}`);
    }

    if (options.content === true && entry.type === 'f') {
      extra.push(`sha256=${await hashFile(absolute)}`);
    }

    manifest.set(entry.relative, [...entry.record, ...extra].join(' '));
  }

  return manifest;
}

/** Each path's xattr names, sorted, as one string. getfattr -m - lists every namespace. */
async function listXattrNames(run: Runner, dir: string): Promise<Map<string, string>> {
  const dump = await run.run('getfattr', ['-R', '-P', '-h', '-m', '-', '--absolute-names', dir], {
    packageHint: 'attr',
  });
  const names = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of dump.stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = [];
      names.set(unescapeGetfattr(line.slice('# file: '.length)), current);
    } else if (line !== '' && current !== undefined) {
      current.push(line);
    }
  }

  return new Map([...names].map(([file, list]) => [file, list.sort().join(',')]));
}

/** getfattr writes unusual bytes in file names as backslash-octal escapes. */
function unescapeGetfattr(value: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(value, 'utf8');
  for (let index = 0; index < raw.length; index += 1) {
    const octal = raw.subarray(index + 1, index + 4).toString('latin1');
    if (raw[index] === 0x5c && /^[0-7]{3}$/.test(octal)) {
      bytes.push(parseInt(octal, 8));
      index += 3;
    } else if (raw[index] === 0x5c && raw[index + 1] === 0x5c) {
      bytes.push(0x5c);
      index += 1;
    } else {
      bytes.push(raw[index] as number);
    }
  }

  return Buffer.from(bytes).toString('utf8');
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
  }

  return hash.digest('hex');
}

/** The differences between two manifests, as short lines for an error message. */
export function compareManifests(source: Manifest, copy: Manifest): string[] {
  const differences: string[] = [];
  for (const [relative, record] of source) {
    const other = copy.get(relative);
    if (other === undefined) {
      differences.push(`missing: /${relative}`);
    } else if (other !== record) {
      differences.push(`differs: /${relative} (${record} → ${other})`);
    }
  }

  for (const relative of copy.keys()) {
    if (!source.has(relative)) {
      differences.push(`unexpected: /${relative}`);
    }
  }

  return differences;
}
