import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { Runner } from '../exec.js';

/**
 * A description of a tree precise enough to prove a copy complete: for every entry its type,
 * mode, owner, size, mtime (to the nanosecond), link target, device numbers, hard-link group and
 * xattr names, and optionally a content hash.
 *
 * find(1) and getfattr(1) walk the tree: a walk in Node would cost more than the whole of ctrvol's
 * own budget at boot on a store of tens of thousands of files, and Node has no xattr call.
 */
/**
 * Keyed by path relative to the top, as a latin1 string: one character per byte, so names that
 * are not valid UTF-8 stay distinct and exact. `toFsPath` turns a key back into the bytes.
 */
export type Manifest = Map<string, ManifestEntry>;

export interface ManifestEntry {
  type: string;
  mode: string;
  owner: string;
  size: string;
  mtime: string;
  target: string;
  /** The first path, in sort order, of the hard-link group this entry belongs to. */
  link: string;
  xattrs: string;
  rdev: string;
  sha256: string;
}

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
  const excluded = [...(options.exclude ?? [])];
  const isExcluded = (relative: string) =>
    excluded.some((name) => relative === name || relative.startsWith(`${name}/`));
  const [listing, xattrs] = await Promise.all([
    run.run('find', [dir, '-xdev', '-printf', findFormat], listingOptions),
    listXattrNames(run, dir),
  ]);

  // One pass over the fields, without a temporary array per entry: a store holds tens of
  // thousands of entries and this runs at boot, twice.
  const fields = listing.stdout.split('\0');
  const manifest: Manifest = new Map();
  const linked: { relative: string; inode: string; entry: ManifestEntry }[] = [];
  const special: { relative: string; entry: ManifestEntry }[] = [];
  for (let index = 0; index + fieldCount <= fields.length; index += fieldCount) {
    const relative = fields[index + 9] as string;
    if (relative !== '' && excluded.length > 0 && isExcluded(relative)) {
      continue;
    }

    const type = fields[index] as string;
    const entry: ManifestEntry = {
      type,
      mode: fields[index + 1] as string,
      owner: `${fields[index + 2]}:${fields[index + 3]}`,
      // A directory's size is an artefact of its filesystem, not of its contents.
      size: type === 'd' ? '-' : (fields[index + 4] as string),
      mtime: fields[index + 5] as string,
      target: fields[index + 8] as string,
      link: '',
      xattrs: xattrs.get(relative) ?? '',
      rdev: '',
      sha256: '',
    };
    manifest.set(relative, entry);
    if (type !== 'd' && fields[index + 6] !== '1') {
      linked.push({ relative, inode: fields[index + 7] as string, entry });
    }

    if (type === 'c' || type === 'b' || (options.content === true && type === 'f')) {
      special.push({ relative, entry });
    }
  }

  // Inode numbers differ between filesystems; what must match is which paths share one.
  const groups = new Map<string, string>();
  for (const { relative, inode } of linked) {
    const first = groups.get(inode);
    if (first === undefined || relative < first) {
      groups.set(inode, relative);
    }
  }

  for (const { inode, entry } of linked) {
    entry.link = groups.get(inode) ?? '';
  }

  for (const { relative, entry } of special) {
    const absolute = toFsPath(dir, relative);
    if (entry.type === 'f') {
      entry.sha256 = await hashFile(absolute);
    } else {
      entry.rdev = String((await lstat(absolute, { bigint: true })).rdev);
    }
  }

  return manifest;
}

// XFS keeps POSIX ACLs on disk as these trusted.* attributes and shows them beside the
// system.posix_acl_* names; the ACL itself is compared through the system.* name.
const filesystemShadows = new Set(['trusted.SGI_ACL_FILE', 'trusted.SGI_ACL_DEFAULT']);

// A store of a few hundred thousand files lists to more than execa's 100 MB default.
const listingOptions = { encoding: 'latin1', maxBuffer: 1 << 30 } as const;

/** The bytes of a manifest key, below a directory, for the fs calls that need the real name. */
export function toFsPath(dir: string, relative: string): Buffer {
  const top = Buffer.from(dir);
  return relative === ''
    ? top
    : Buffer.concat([top, Buffer.from('/'), Buffer.from(relative, 'latin1')]);
}

/** Each relative path's xattr names, sorted, as one string. getfattr -m - lists every namespace. */
async function listXattrNames(run: Runner, dir: string): Promise<Map<string, string>> {
  const dump = await run.run('getfattr', ['-R', '-P', '-h', '-m', '-', '--absolute-names', dir], {
    ...listingOptions,
    packageHint: 'attr',
  });
  const top = Buffer.from(dir).toString('latin1');
  const names = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of dump.stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = [];
      const file = unescapeGetfattr(line.slice('# file: '.length));
      names.set(file === top ? '' : file.slice(top.length + 1), current);
    } else if (line !== '' && current !== undefined && !filesystemShadows.has(line)) {
      current.push(line);
    }
  }

  return new Map([...names].map(([file, list]) => [file, list.sort().join(',')]));
}

/** getfattr writes unusual bytes in file names as backslash-octal escapes; latin1 in and out. */
function unescapeGetfattr(value: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(value, 'latin1');
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

  return Buffer.from(bytes).toString('latin1');
}

async function hashFile(file: Buffer): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
  }

  return hash.digest('hex');
}

const entryFields: readonly (keyof ManifestEntry)[] = [
  'type',
  'mode',
  'owner',
  'size',
  'mtime',
  'target',
  'link',
  'xattrs',
  'rdev',
  'sha256',
];

/** One digest of a whole manifest, to tell later whether a tree is still what it was. */
export function getManifestDigest(manifest: Manifest): string {
  const hash = createHash('sha256');
  for (const relative of [...manifest.keys()].sort()) {
    const entry = manifest.get(relative) as ManifestEntry;
    hash.update(`${relative}\0${entryFields.map((field) => entry[field]).join('\0')}\n`, 'latin1');
  }

  return hash.digest('hex');
}

/** The differences between two manifests, as short phrases for an error message. */
export function compareManifests(source: Manifest, copy: Manifest): string[] {
  const differences: string[] = [];
  for (const [relative, entry] of source) {
    const other = copy.get(relative);
    if (other === undefined) {
      differences.push(`missing: /${showName(relative)}`);
      continue;
    }

    let changes: string[] | undefined;
    for (const field of entryFields) {
      if (entry[field] !== other[field]) {
        (changes ??= []).push(`${field} "${entry[field]}" → "${other[field]}"`);
      }
    }

    if (changes !== undefined) {
      differences.push(`/${showName(relative)}: ${changes.join(', ')}`);
    }
  }

  for (const relative of copy.keys()) {
    if (!source.has(relative)) {
      differences.push(`unexpected: /${showName(relative)}`);
    }
  }

  return differences;
}

/** A name for a message: as UTF-8 when it is valid UTF-8, with its raw bytes escaped otherwise. */
function showName(relative: string): string {
  const bytes = Buffer.from(relative, 'latin1');
  const text = bytes.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(bytes)) {
    return text;
  }

  return [...bytes]
    .map((byte) =>
      byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\x${byte.toString(16)}`,
    )
    .join('');
}
