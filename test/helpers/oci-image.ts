import { createHash, randomFillSync } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { bufferEntry, diskEntry, tarStream, type TarEntry } from './tar.js';

export interface ImageFile {
  /** Path inside the image, without a leading slash. */
  path: string;
  content?: string | Uint8Array;
  /** Random, incompressible contents of this size, used when `content` is not given. */
  sizeBytes?: number;
  mode?: number;
  /** Which layer the file goes into (0 = bottom). Defaults to 0. */
  layer?: number;
}

export interface BuildImageOptions {
  /** Full reference including the tag, e.g. `localhost/kubernetes/pause:latest`. */
  name: string;
  files?: ImageFile[];
  /** Extra generated files of random contents, spread over directories and layers. */
  fileCount?: number;
  /** Total size of the generated files; defaults to 4 KiB each. */
  generatedBytes?: number;
  /** Number of layers; generated files are dealt round-robin between them. Defaults to 1. */
  layerCount?: number;
  out: string;
  /**
   * Random contents do not compress, and deflate spends ~17 ms per MiB finding that out, so
   * large filler images are better written with level 0 (stored blocks, still valid gzip).
   */
  gzipLevel?: number;
  entrypoint?: string[];
}

export interface BuiltLayer {
  digest: string;
  diffId: string;
  size: number;
  fileCount: number;
  uncompressedBytes: number;
}

export interface BuiltImage {
  name: string;
  archivePath: string;
  indexDigest: string;
  manifestDigest: string;
  configDigest: string;
  layers: BuiltLayer[];
  platform: { os: 'linux'; architecture: string };
}

export const mediaTypes = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

/** containerd reads the full image name from this index annotation when importing. */
export const containerdImageNameAnnotation = 'io.containerd.image.name';
export const ociRefNameAnnotation = 'org.opencontainers.image.ref.name';

// A fixed timestamp keeps the JSON blobs, and so the manifest digest, stable for equal inputs.
const EPOCH = 1_700_000_000;
const CHUNK = 1 << 20;
const GENERATED_DIR_WIDTH = 256;

export function hostArchitecture(): string {
  switch (process.arch) {
    case 'x64':
      return 'amd64';
    case 'arm64':
      return 'arm64';
    default:
      throw new Error(`no OCI architecture mapping for node arch ${process.arch}`);
  }
}

/** Splits `repo[:tag]` into repository and tag, defaulting the tag the way registries do. */
export function parseImageName(name: string): { repository: string; tag: string; full: string } {
  const lastSlash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  if (name.includes('@')) throw new Error(`digest references cannot be built: ${name}`);
  if (colon > lastSlash) {
    const repository = name.slice(0, colon);
    const tag = name.slice(colon + 1);
    return { repository, tag, full: name };
  }
  return { repository: name, tag: 'latest', full: `${name}:latest` };
}

function* randomChunks(size: number): Generator<Uint8Array> {
  for (let left = size; left > 0; left -= CHUNK) {
    // A fresh buffer each time: gzip may still hold the previous one asynchronously.
    yield randomFillSync(Buffer.allocUnsafe(Math.min(CHUNK, left)));
  }
}

function parentDirs(filePath: string): string[] {
  const parts = filePath.split('/').slice(0, -1);
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}

function layerEntries(files: ImageFile[]): TarEntry[] {
  const entries: TarEntry[] = [];
  const seenDirs = new Set<string>();
  for (const file of files) {
    const clean = file.path.replace(/^\/+/, '');
    for (const dir of parentDirs(clean)) {
      if (seenDirs.has(dir)) continue;
      seenDirs.add(dir);
      entries.push({ type: 'dir', path: dir, mtime: EPOCH });
    }
    const common = { mtime: EPOCH, ...(file.mode === undefined ? {} : { mode: file.mode }) };
    if (file.content !== undefined) {
      const data =
        typeof file.content === 'string' ? Buffer.from(file.content, 'utf8') : file.content;
      entries.push(bufferEntry(clean, data, common));
    } else {
      const size = file.sizeBytes ?? 0;
      entries.push({ type: 'file', path: clean, size, ...common, body: () => randomChunks(size) });
    }
  }
  return entries;
}

function generatedFiles(count: number, totalBytes: number, layerCount: number): ImageFile[] {
  const files: ImageFile[] = [];
  const base = Math.floor(totalBytes / Math.max(count, 1));
  let remainder = totalBytes - base * count;
  for (let i = 0; i < count; i += 1) {
    const extra = remainder > 0 ? 1 : 0;
    remainder -= extra;
    const dir = `d${String(Math.floor(i / GENERATED_DIR_WIDTH)).padStart(4, '0')}`;
    files.push({
      path: `data/${dir}/f${String(i).padStart(6, '0')}.bin`,
      sizeBytes: base + extra,
      layer: i % layerCount,
    });
  }
  return files;
}

async function writeBlob(blobDir: string, data: Buffer): Promise<{ digest: string; size: number }> {
  const hex = createHash('sha256').update(data).digest('hex');
  await writeFile(path.join(blobDir, hex), data);
  return { digest: `sha256:${hex}`, size: data.length };
}

async function writeLayer(
  blobDir: string,
  files: ImageFile[],
  gzipLevel: number,
  index: number,
): Promise<BuiltLayer> {
  const uncompressed = createHash('sha256');
  const compressed = createHash('sha256');
  let uncompressedBytes = 0;
  let size = 0;
  const tmp = path.join(blobDir, `.layer-${index}.tmp`);
  await pipeline(
    tarStream(layerEntries(files)),
    async function* (source: AsyncIterable<Uint8Array>) {
      for await (const chunk of source) {
        uncompressed.update(chunk);
        uncompressedBytes += chunk.length;
        yield chunk;
      }
    },
    createGzip({ level: gzipLevel }),
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        compressed.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    },
    createWriteStream(tmp),
  );
  const hex = compressed.digest('hex');
  await rename(tmp, path.join(blobDir, hex));
  return {
    digest: `sha256:${hex}`,
    diffId: `sha256:${uncompressed.digest('hex')}`,
    size,
    fileCount: files.length,
    uncompressedBytes,
  };
}

/**
 * Writes an OCI image layout archive (`oci-layout`, `index.json`, `blobs/sha256/…`) for one
 * linux image on the host's architecture, as `ctr images import` expects it.
 */
export async function buildImageArchive(options: BuildImageOptions): Promise<BuiltImage> {
  const { repository, tag, full } = parseImageName(options.name);
  const layerCount = Math.max(1, options.layerCount ?? 1);
  const fileCount = options.fileCount ?? 0;
  const files = [
    ...(options.files ?? []),
    ...generatedFiles(fileCount, options.generatedBytes ?? fileCount * 4096, layerCount),
  ];
  const perLayer: ImageFile[][] = Array.from({ length: layerCount }, () => []);
  for (const file of files) {
    const bucket = perLayer[file.layer ?? 0];
    if (bucket === undefined) throw new Error(`${file.path}: no layer ${file.layer}`);
    bucket.push(file);
  }

  // Staging next to the output keeps the final renames on one filesystem.
  await mkdir(path.dirname(path.resolve(options.out)), { recursive: true });
  const staging = await mkdtemp(`${path.resolve(options.out)}.staging-`);
  try {
    const blobDir = path.join(staging, 'blobs', 'sha256');
    await mkdir(blobDir, { recursive: true });
    const layers: BuiltLayer[] = [];
    for (const [i, layerFiles] of perLayer.entries()) {
      layers.push(await writeLayer(blobDir, layerFiles, options.gzipLevel ?? 1, i));
    }

    const architecture = hostArchitecture();
    const platform = { os: 'linux' as const, architecture };
    const config = await writeBlob(
      blobDir,
      Buffer.from(
        JSON.stringify({
          created: new Date(EPOCH * 1000).toISOString(),
          architecture,
          os: 'linux',
          config: {
            Entrypoint: options.entrypoint ?? ['/pause'],
            WorkingDir: '/',
            Labels: { 'org.opencontainers.image.title': repository },
          },
          rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
          history: layers.map((_, i) => ({
            created: new Date(EPOCH * 1000).toISOString(),
            created_by: `ctrvol test helper layer ${i}`,
          })),
        }),
      ),
    );
    const manifest = await writeBlob(
      blobDir,
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: mediaTypes.manifest,
          config: { mediaType: mediaTypes.config, digest: config.digest, size: config.size },
          layers: layers.map((l) => ({
            mediaType: mediaTypes.layerGzip,
            digest: l.digest,
            size: l.size,
          })),
        }),
      ),
    );
    // containerd's exporter writes the same pair: the full name for containerd, the tag alone
    // for OCI tools, which define ref.name as a tag. Either one alone is enough for ctr 1.6,
    // which keeps any ref.name containing '/', ':' or '@' as the whole name.
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: mediaTypes.index,
        manifests: [
          {
            mediaType: mediaTypes.manifest,
            digest: manifest.digest,
            size: manifest.size,
            platform,
            annotations: {
              [containerdImageNameAnnotation]: full,
              [ociRefNameAnnotation]: tag,
            },
          },
        ],
      }),
    );
    const indexDigest = `sha256:${createHash('sha256').update(index).digest('hex')}`;

    const entries: TarEntry[] = [
      bufferEntry('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'), { mtime: EPOCH }),
      bufferEntry('index.json', index, { mtime: EPOCH }),
      { type: 'dir', path: 'blobs', mtime: EPOCH },
      { type: 'dir', path: 'blobs/sha256', mtime: EPOCH },
    ];
    // Identical layers share one blob, and a tar must not hold the same member twice.
    const digests = new Set([config.digest, manifest.digest, ...layers.map((l) => l.digest)]);
    for (const digest of digests) {
      const hex = digest.slice('sha256:'.length);
      const source = path.join(blobDir, hex);
      entries.push(diskEntry(`blobs/sha256/${hex}`, source, (await stat(source)).size));
    }
    const tmpOut = `${options.out}.tmp`;
    await pipeline(tarStream(entries), createWriteStream(tmpOut));
    await rename(tmpOut, options.out);

    return {
      name: full,
      archivePath: options.out,
      indexDigest,
      manifestDigest: manifest.digest,
      configDigest: config.digest,
      layers,
      platform,
    };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
