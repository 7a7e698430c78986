import { createReadStream } from 'node:fs';

/**
 * A minimal ustar writer: enough for OCI layers and OCI layout archives, which need regular
 * files, directories and symlinks with plain owners and modes. It yields buffers so that callers
 * can stream gigabytes through hashing and gzip without holding them in memory.
 */

const BLOCK = 512;
// The 12-byte size field holds 11 octal digits; larger members would need GNU or PAX headers.
const MAX_SIZE = 0o77777777777;

export type TarEntry =
  | { type: 'dir'; path: string; mode?: number; mtime?: number }
  | { type: 'symlink'; path: string; target: string; mtime?: number }
  | {
      type: 'file';
      path: string;
      size: number;
      mode?: number;
      mtime?: number;
      /** Must yield exactly `size` bytes in total. */
      body: () => AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
    };

/** A file whose contents are already in memory. */
export function bufferEntry(
  entryPath: string,
  data: Uint8Array,
  options: { mode?: number; mtime?: number } = {},
): TarEntry {
  return { type: 'file', path: entryPath, size: data.length, ...options, body: () => [data] };
}

/** A file streamed from disk, for blobs too large to buffer. */
export function diskEntry(entryPath: string, source: string, size: number): TarEntry {
  return { type: 'file', path: entryPath, size, body: () => createReadStream(source) };
}

function writeString(header: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new Error(`tar field too long (${length}): ${value}`);
  bytes.copy(header, offset);
}

function writeOctal(header: Buffer, offset: number, length: number, value: number): void {
  // ustar numbers are zero-padded octal followed by a NUL, filling the whole field.
  const digits = Math.trunc(value)
    .toString(8)
    .padStart(length - 1, '0');
  if (digits.length > length - 1) throw new Error(`tar number too large: ${value}`);
  writeString(header, offset, length, `${digits}\0`);
}

// ustar keeps up to 155 bytes of leading directories in `prefix` and the rest in `name`.
function splitPath(entryPath: string): { name: string; prefix: string } {
  if (Buffer.byteLength(entryPath) <= 100) return { name: entryPath, prefix: '' };
  for (let i = entryPath.indexOf('/'); i >= 0; i = entryPath.indexOf('/', i + 1)) {
    const prefix = entryPath.slice(0, i);
    const name = entryPath.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name !== '') {
      return { name, prefix };
    }
  }
  throw new Error(`path too long for ustar: ${entryPath}`);
}

export function tarHeader(entry: TarEntry): Buffer {
  const header = Buffer.alloc(BLOCK);
  const entryPath = entry.type === 'dir' ? `${entry.path.replace(/\/+$/, '')}/` : entry.path;
  const { name, prefix } = splitPath(entryPath);
  const defaultMode = entry.type === 'file' ? 0o644 : entry.type === 'dir' ? 0o755 : 0o777;
  const mode = entry.type === 'symlink' ? 0o777 : (entry.mode ?? defaultMode);
  const size = entry.type === 'file' ? entry.size : 0;
  if (size > MAX_SIZE) throw new Error(`tar member too large: ${entry.path}`);

  writeString(header, 0, 100, name);
  writeOctal(header, 100, 8, mode & 0o7777);
  writeOctal(header, 108, 8, 0);
  writeOctal(header, 116, 8, 0);
  writeOctal(header, 124, 12, size);
  writeOctal(header, 136, 12, entry.mtime ?? 0);
  header.fill(0x20, 148, 156);
  header[156] = (entry.type === 'file' ? '0' : entry.type === 'dir' ? '5' : '2').charCodeAt(0);
  if (entry.type === 'symlink') writeString(header, 157, 100, entry.target);
  writeString(header, 257, 6, 'ustar\0');
  writeString(header, 263, 2, '00');
  writeString(header, 265, 32, 'root');
  writeString(header, 297, 32, 'root');
  writeString(header, 345, 155, prefix);

  let sum = 0;
  for (const byte of header) sum += byte;
  writeString(header, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return header;
}

const zeros = Buffer.alloc(BLOCK * 2);

export async function* tarStream(
  entries: AsyncIterable<TarEntry> | Iterable<TarEntry>,
): AsyncGenerator<Uint8Array> {
  for await (const entry of entries) {
    yield tarHeader(entry);
    if (entry.type !== 'file') continue;
    let written = 0;
    for await (const chunk of entry.body()) {
      written += chunk.length;
      yield chunk;
    }
    if (written !== entry.size) {
      throw new Error(`tar member ${entry.path}: declared ${entry.size} bytes, got ${written}`);
    }
    const pad = (BLOCK - (written % BLOCK)) % BLOCK;
    if (pad > 0) yield zeros.subarray(0, pad);
  }
  // Two zero blocks mark the end of the archive.
  yield zeros;
}
