import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
 * so a one-shot command that was given a cache folder (code-cache.ts) (`ctrvol setup` at boot, `ctrvol status`)
 * reads it there and, when there was none or V8 refused it, writes one as it exits. V8 refuses a
 * cache made by another V8 version or other flags; the file name also carries the bundle's hash,
 * because V8 itself checks only the source's length.
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

function readIfThere(file: string): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch {
    return undefined;
  }
}

/** Writes the cache and removes those of other builds or Node versions, which nothing reads. */
function writeQuietly(file: string, name: string, script: vm.Script): void {
  try {
    const dir = path.dirname(file);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, script.createCachedData(), { mode: 0o644 });
    renameSync(temporary, file);
    for (const entry of readdirSync(dir)) {
      if (
        entry.startsWith(`${name}-`) &&
        entry.endsWith('.v8cache') &&
        entry !== path.basename(file)
      ) {
        rmSync(path.join(dir, entry), { force: true });
      }
    }
  } catch {
    // Read-only /var (the hardened monitor), a full disk: the next run compiles as this one did.
  }
}
