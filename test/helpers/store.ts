import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, type BigIntStats } from 'node:fs';
import {
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import {
  SANDBOX_IMAGE,
  exportImage,
  importImage,
  startContainerd,
  type Containerd,
} from './containerd.js';
import { buildImageArchive, type ImageFile } from './oci-image.js';
import { makeTempDir } from './temp.js';

export interface SeedAmiStoreOptions {
  /**
   * Roughly how much the extra images add to the store on disk. Random contents do not
   * compress, so each image costs its payload twice: the gzip blob in the content store and
   * the unpacked snapshot. The payload is therefore half of this.
   */
  extraBytes?: number;
  /** Files in the extra images, all together. Defaults to one per 64 KiB of payload. */
  fileCount?: number;
  /** How many extra images to spread the bytes over. Defaults to one per ~100 MB. */
  extraImageCount?: number;
  /** Where to write an export of the pause image, like the AMI's /etc/eks/pause.tar. */
  pauseTarOut?: string;
}

export interface SeededAmiStore {
  root: string;
  pauseImage: string;
  /** Every image name put there, the pause image first. */
  images: string[];
  pinnedImages: string[];
  payloadBytes: number;
  fileCount: number;
  durationMs: number;
}

const MB = 1_000_000;

/** The files of the locally built stand-in for registry.k8s.io/pause. */
export function pauseImageFiles(): ImageFile[] {
  return [
    // Nothing runs it (runc cannot start sandboxes here); it only has to be the image's content.
    { path: 'pause', content: '#!/bin/sh\nexec sleep infinity\n', mode: 0o755 },
    { path: 'etc/passwd', content: 'root:x:0:0:root:/:/sbin/nologin\n' },
  ];
}

/**
 * Filler files for one extra image over two layers. The upper layer deletes a file and makes a
 * directory opaque, so that the overlayfs snapshotter writes a 0:0 character device and a
 * trusted.overlay.opaque xattr into the store: the two things a careless copy loses.
 */
function fillerLayerFiles(index: number): ImageFile[] {
  return [
    { path: 'etc/filler-release', content: `filler ${index}\n`, layer: 0 },
    { path: 'opt/removed.txt', content: 'deleted by the upper layer\n', layer: 0 },
    { path: 'opt/cache/old.txt', content: 'hidden by an opaque directory\n', layer: 0 },
    { path: 'usr/bin/tool', content: '#!/bin/sh\n', mode: 0o4755, layer: 0 },
    { path: 'opt/.wh.removed.txt', content: '', layer: 1 },
    { path: 'opt/cache/.wh..wh..opq', content: '', layer: 1 },
    { path: 'opt/cache/new.txt', content: 'replaces the lower directory\n', layer: 1 },
  ];
}

/**
 * Makes a containerd root the way an AL2023 EKS AMI ships it: the sandbox image
 * localhost/kubernetes/pause:latest imported into k8s.io and labelled pinned, plus optional
 * extra images for bulk. A private containerd does the work on a temporary state dir and socket
 * and is stopped cleanly before this returns, so the root is at rest.
 */
export async function seedAmiStore(
  containerdRoot: string,
  options: SeedAmiStoreOptions = {},
): Promise<SeededAmiStore> {
  const started = performance.now();
  const work = await makeTempDir('ctrvol-seed');
  let ctrd: Containerd | undefined;
  try {
    const extraBytes = options.extraBytes ?? 0;
    const payloadBytes = Math.floor(extraBytes / 2);
    const imageCount =
      payloadBytes > 0
        ? Math.max(1, options.extraImageCount ?? Math.ceil(extraBytes / (100 * MB)))
        : 0;
    const totalFiles =
      imageCount > 0
        ? Math.max(imageCount, options.fileCount ?? Math.ceil(payloadBytes / 65536))
        : 0;

    const pause = await buildImageArchive({
      name: SANDBOX_IMAGE,
      files: pauseImageFiles(),
      out: path.join(work.path, 'pause.tar'),
    });
    ctrd = await startContainerd({
      root: containerdRoot,
      state: path.join(work.path, 'state'),
      dir: work.path,
    });
    await importImage(ctrd, pause.archivePath, { pinned: true, names: [pause.name] });

    const images = [pause.name];
    for (let i = 0; i < imageCount; i += 1) {
      const share = (n: number): number =>
        Math.floor(n / imageCount) + (i < n % imageCount ? 1 : 0);
      const archive = path.join(work.path, `filler-${i}.tar`);
      const built = await buildImageArchive({
        name: `localhost/ctrvol-test/filler-${i}:latest`,
        files: fillerLayerFiles(i),
        fileCount: share(totalFiles),
        generatedBytes: share(payloadBytes),
        layerCount: 2,
        // Random bytes do not compress; stored deflate blocks save seconds per 100 MB.
        gzipLevel: 0,
        out: archive,
      });
      await importImage(ctrd, archive, { names: [built.name] });
      // The archive is as large as the image; dropping it at once halves the peak disk use.
      await rm(archive, { force: true });
      images.push(built.name);
    }

    if (options.pauseTarOut !== undefined) await exportImage(ctrd, pause.name, options.pauseTarOut);
    await ctrd.stop();
    ctrd = undefined;
    return {
      root: path.resolve(containerdRoot),
      pauseImage: pause.name,
      images,
      pinnedImages: [pause.name],
      payloadBytes,
      fileCount: totalFiles,
      durationMs: performance.now() - started,
    };
  } catch (error) {
    const tail = ctrd === undefined ? '' : await ctrd.logTail();
    if (tail !== '' && error instanceof Error) error.message += `\ncontainerd log:\n${tail}`;
    throw error;
  } finally {
    await ctrd?.stop();
    await work.cleanup();
  }
}

export interface SeedStandInStoreOptions {
  bytes: number;
  fileCount: number;
  /**
   * Adds what a real store holds besides plain files: a whiteout device, trusted and user
   * xattrs, symlinks, a hard link, setuid and foreign owners. Needs root; defaults to whether
   * this process is root.
   */
  specials?: boolean;
}

export interface SeededStandInStore {
  dir: string;
  fileCount: number;
  bytes: number;
  specials: string[];
}

async function writeRandomFile(file: string, size: number): Promise<void> {
  await writeFile(file, randomFillSync(Buffer.allocUnsafe(size)));
}

async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

/**
 * A plain tree shaped like a containerd root (content blobs, overlayfs snapshots, bolt files),
 * for machines or tests that have no containerd. It makes no claim to be loadable.
 */
export async function seedStandInStore(
  dir: string,
  options: SeedStandInStoreOptions,
): Promise<SeededStandInStore> {
  const root = path.resolve(dir);
  const count = Math.max(1, options.fileCount);
  const base = Math.floor(options.bytes / count);
  let remainder = options.bytes - base * count;
  const blobs = path.join(root, 'io.containerd.content.v1.content', 'blobs', 'sha256');
  const snapshots = path.join(root, 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
  const bolt = path.join(root, 'io.containerd.metadata.v1.bolt');
  await Promise.all([blobs, snapshots, bolt].map((d) => mkdir(d, { recursive: true })));

  // A tenth of the files go to the content store, the rest spread over snapshot directories.
  const blobCount = Math.floor(count / 10);
  const jobs: { file: string; size: number }[] = [];
  const dirs = new Set<string>();
  for (let i = 0; i < count; i += 1) {
    const size = base + (remainder > 0 ? 1 : 0);
    if (remainder > 0) remainder -= 1;
    if (i < blobCount) {
      jobs.push({ file: path.join(blobs, `pending-${i}`), size });
      continue;
    }
    const n = i - blobCount;
    const snapshotDir = path.join(snapshots, String(1 + (n % 7)), 'fs', `d${Math.floor(n / 500)}`);
    dirs.add(snapshotDir);
    jobs.push({ file: path.join(snapshotDir, `f${n}`), size });
  }
  await Promise.all([...dirs].map((d) => mkdir(d, { recursive: true })));
  await inParallel(jobs, 16, (job) => writeRandomFile(job.file, job.size));
  // Content blobs are named by their digest, as containerd names them.
  await inParallel(
    jobs.filter((j) => j.file.includes(`${path.sep}pending-`)),
    8,
    async (job) => {
      const digest = await sha256File(job.file);
      await rename(job.file, path.join(blobs, digest));
    },
  );
  await writeRandomFile(path.join(bolt, 'meta.db'), 32768);
  await writeRandomFile(
    path.join(root, 'io.containerd.snapshotter.v1.overlayfs', 'metadata.db'),
    16384,
  );

  const specials: string[] = [];
  const wantSpecials = options.specials ?? process.getuid?.() === 0;
  if (wantSpecials) {
    const fs1 = path.join(snapshots, '1', 'fs');
    const fs2 = path.join(snapshots, '2', 'fs');
    await mkdir(path.join(fs2, 'opaque'), { recursive: true });
    await mkdir(path.join(fs1, 'etc'), { recursive: true });
    await mkdir(path.join(fs1, 'empty'), { recursive: true });
    // How overlayfs records a deleted file and a replaced directory in an upper layer.
    await execa('mknod', [path.join(fs2, 'deleted'), 'c', '0', '0'], { stdin: 'ignore' });
    await execa('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(fs2, 'opaque')]);
    await writeFile(path.join(fs1, 'etc', 'os-release'), 'ID=standin\n');
    await execa('setfattr', [
      '-n',
      'user.ctrvol',
      '-v',
      'kept',
      path.join(fs1, 'etc', 'os-release'),
    ]);
    await symlink('os-release', path.join(fs1, 'etc', 'os-release.link'));
    await symlink('/nonexistent/target', path.join(fs1, 'dangling'));
    await link(path.join(fs1, 'etc', 'os-release'), path.join(fs1, 'etc', 'hardlink'));
    await writeFile(path.join(fs1, 'setuid'), '#!/bin/sh\n');
    await chmod(path.join(fs1, 'setuid'), 0o4755);
    await writeFile(path.join(fs1, 'owned'), 'uid 1000\n');
    await chown(path.join(fs1, 'owned'), 1000, 1000);
    await chmod(path.join(fs1, 'empty'), 0o1777);
    // An old mtime makes a copy that drops timestamps visible at once.
    await utimes(path.join(fs1, 'etc', 'os-release'), 1_000_000_000, 1_000_000_000);
    specials.push(
      'whiteout char device 0:0',
      'trusted.overlay.opaque xattr',
      'user xattr',
      'symlinks (one dangling)',
      'hard link',
      'setuid file',
      'file owned by 1000:1000',
      'sticky empty directory',
    );
  }
  return { dir: root, fileCount: count, bytes: options.bytes, specials };
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface TreeChecksumOptions {
  /** Relative paths (and everything below them) to leave out, e.g. `lost+found`. */
  exclude?: string[];
  /** Whether the top directory's own mode, owner and mtime count. Defaults to true. */
  includeRoot?: boolean;
}

// getfattr escapes unusual bytes in names as \ooo and a backslash as \\.
function unescapeGetfattr(name: string): string {
  return name.replace(/\\(\\|[0-7]{3})/g, (_, code: string) =>
    code === '\\' ? '\\' : String.fromCharCode(parseInt(code, 8)),
  );
}

async function readXattrs(dir: string): Promise<Map<string, string[]>> {
  // One recursive call: forking getfattr per file would dominate the time on large trees.
  const { stdout } = await execa(
    'getfattr',
    [
      '--dump',
      '--match=-',
      '--no-dereference',
      '--physical',
      '--recursive',
      '--encoding=hex',
    ].concat(['--absolute-names', dir]),
    { stdin: 'ignore', maxBuffer: 1024 * 1024 * 1024 },
  );
  const result = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = [];
      result.set(path.resolve(unescapeGetfattr(line.slice('# file: '.length))), current);
    } else if (line.trim() !== '' && current !== undefined) {
      current.push(line);
    }
  }
  for (const values of result.values()) values.sort();
  return result;
}

function typeOf(st: BigIntStats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'unknown';
}

// glibc's encoding of dev_t.
function majorMinor(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/**
 * One line per entry, in a fixed order, describing everything a faithful copy must keep:
 * type, permission bits, owner, size, mtime to the nanosecond, symlink target, device numbers,
 * hard links, xattrs and a SHA-256 of the contents. Directory sizes and link counts are left
 * out because they depend on the filesystem, not on what was copied.
 */
export async function treeManifest(
  dir: string,
  options: TreeChecksumOptions = {},
): Promise<string[]> {
  const top = path.resolve(dir);
  const excluded = new Set((options.exclude ?? []).map((p) => path.normalize(p)));
  const xattrs = await readXattrs(top);
  const lines: { rel: string; fields: Record<string, unknown>; file?: string }[] = [];
  const firstPathOfInode = new Map<string, string>();

  const visit = async (abs: string, rel: string): Promise<void> => {
    const st = await lstat(abs, { bigint: true });
    const type = typeOf(st);
    const fields: Record<string, unknown> = {
      type,
      mode: (st.mode & 0o7777n).toString(8),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: st.mtimeNs.toString(),
    };
    if (type !== 'dir') fields.size = st.size.toString();
    if (type === 'symlink') fields.target = await readlink(abs);
    if (type === 'char' || type === 'block') fields.rdev = majorMinor(st.rdev);
    if (type !== 'dir' && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = firstPathOfInode.get(key);
      if (first === undefined) firstPathOfInode.set(key, rel);
      else fields.linkTo = first;
    }
    const attrs = xattrs.get(abs);
    if (attrs !== undefined && attrs.length > 0) fields.xattrs = attrs;
    if (rel !== '.' || options.includeRoot !== false) {
      lines.push({ rel, fields, ...(type === 'file' ? { file: abs } : {}) });
    }
    if (type !== 'dir') return;
    // Sorting by code unit order keeps the walk, and so hard-link attribution, stable.
    const names = (await readdir(abs)).sort();
    for (const name of names) {
      const childRel = rel === '.' ? name : `${rel}/${name}`;
      if (excluded.has(childRel)) continue;
      await visit(path.join(abs, name), childRel);
    }
  };
  await visit(top, '.');

  await inParallel(lines, 8, async (line) => {
    if (line.file !== undefined) line.fields.sha256 = await sha256File(line.file);
  });
  return lines.map((l) => JSON.stringify([l.rel, l.fields]));
}

/** A SHA-256 over treeManifest: equal digests mean nothing a copy should keep has changed. */
export async function treeChecksum(
  dir: string,
  options: TreeChecksumOptions = {},
): Promise<string> {
  const hash = createHash('sha256');
  for (const line of await treeManifest(dir, options)) hash.update(`${line}\n`);
  return hash.digest('hex');
}

/** Lines present in only one of two manifests, for assertion messages. */
export function diffManifests(before: string[], after: string[], limit = 20): string[] {
  const a = new Set(before);
  const b = new Set(after);
  return [
    ...before.filter((l) => !b.has(l)).map((l) => `- ${l}`),
    ...after.filter((l) => !a.has(l)).map((l) => `+ ${l}`),
  ].slice(0, limit);
}
