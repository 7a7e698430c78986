import { createHash } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import Module from 'node:module';
import path from 'node:path';
import vm from 'node:vm';
import { gunzipSync } from 'node:zlib';
import { getCodeCacheDir } from './code-cache.js';

/**
 * Loads a bundle embedded in dist/ctrvol.cjs (see scripts/build.mjs): each is a line at the end
 * of the file, `//ctrvol-embedded NAME HASH BASE64-GZIP`, read back from the file, inflated and
 * compiled as a module of its own the first time it is required.
 *
 * Compiling the commands bundle and the functions a setup run calls costs about as much as
 * Node's own start-up. V8 can save that work as a code cache and take it back on the next run,
 * so a one-shot command that was given a cache folder (code-cache.ts) reads it there and, when
 * there was none or it could not be used, writes one as it exits. V8 refuses a cache made by
 * another V8 version or other flags; the file name also carries the bundle's hash, because V8
 * itself checks only the source's length. V8's release builds do not check the data itself, and
 * a damaged cache crashes the process (a boot that never starts containerd), so each file ends
 * with a SHA-256 of its data, checked before V8 sees any of it.
 */

export function loadEmbedded(name: string, file: string, parent: NodeModule): unknown {
  const marker = `//ctrvol-embedded ${name} `;
  const all = readFileSync(file, 'latin1');
  const start = all.lastIndexOf(marker) + marker.length;
  const [hash, text] = all.slice(start, all.indexOf('\n', start)).split(' ') as [string, string];
  const code = gunzipSync(Buffer.from(text, 'base64')).toString('utf8');

  const dir = getCodeCacheDir();
  // Flags change what V8 compiles (--lite-mode, say), and V8 would refuse the other's cache.
  const flags = process.execArgv.join(' ').replace(/[^\w=.-]+/g, '_');
  const cacheFile =
    dir === undefined
      ? undefined
      : path.join(dir, `${name}-${hash}-${process.version}-${process.arch}${flags}.v8cache`);
  const cachedData = cacheFile === undefined ? undefined : readIfThere(cacheFile);
  const filename = `${file}#${name}`;
  const script = new vm.Script(Module.wrap(code), { filename, cachedData });
  if (cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected)) {
    // At exit, so that the cache holds every function the command compiled, not only the
    // bundle's top level. A folder that cannot be written just means no cache next time.
    process.once('exit', () => writeQuietly(cacheFile, name, script));
  }

  const embedded = new Module(filename, parent);
  embedded.filename = file;
  embedded.paths = parent.paths;
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  const require = Module.createRequire(file);
  wrapper.call(embedded.exports, embedded.exports, require, embedded, file, path.dirname(file));
  embedded.loaded = true;
  return embedded.exports;
}

/** The cache folder is ctrvol's, but whatever sits there is read with care: never a FIFO. */
const maxCacheBytes = 64 * 1024 * 1024;
const digestBytes = 32;

function readIfThere(file: string): Buffer | undefined {
  let fd: number;
  try {
    // Non-blocking, so that opening a FIFO put in the cache's place returns at once.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }

  try {
    const info = fstatSync(fd);
    if (!info.isFile() || info.size <= digestBytes || info.size > maxCacheBytes) {
      return undefined;
    }

    const content = readFileSync(fd);
    const data = content.subarray(0, content.length - digestBytes);
    const digest = content.subarray(content.length - digestBytes);
    return createHash('sha256').update(data).digest().equals(digest) ? data : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes the cache (synced, then renamed into place, so that a crash leaves the old file or the
 * new one) and removes those of other builds or Node versions, which nothing reads.
 */
function writeQuietly(file: string, name: string, script: vm.Script): void {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    const dir = path.dirname(file);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const data = script.createCachedData();
    const fd = openSync(temporary, 'w', 0o644);
    try {
      writeSync(fd, data);
      writeSync(fd, createHash('sha256').update(data).digest());
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }

    renameSync(temporary, file);
    for (const entry of readdirSync(dir)) {
      const stale = entry.startsWith(`${name}-`) && entry !== path.basename(file);
      if (stale && /\.v8cache(\.\d+\.tmp)?$/.test(entry)) {
        rmSync(path.join(dir, entry), { force: true });
      }
    }
  } catch {
    // Read-only /var, a full disk, a directory in the file's place: the next run compiles as
    // this one did. Nothing half-written is left behind.
    rmSync(temporary, { force: true, recursive: false });
  }
}
