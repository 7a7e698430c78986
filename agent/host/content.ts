import { type FileHandle, open } from 'node:fs/promises';

/**
 * What lies on a device that carries no signature blkid or wipefs knows. A new EBS volume reads
 * as zeros; an instance-store disk after a stop/start can read as noise, since Nitro erases it
 * by discarding the key its data was encrypted with. Anything else (a raw database file, a
 * wiped-but-not-zeroed disk, an image written with dd) is somebody's data, and is not blank.
 * Noise is blank only on an instance-store disk (isBlankContent): elsewhere it may as well be
 * compressed or encrypted data.
 */
export type ContentSample =
  { kind: 'zeros' } | { kind: 'noise' } | { kind: 'data'; offset: number; entropy: number };

/** Bytes read at each sampled place. */
export const sampleBytes = 16 * 1024;

/** The first MiB is read whole: partition tables, boot blocks and headers all live there. */
const headBytes = 1024 * 1024;

/** Places sampled across the rest of the device, evenly spaced: 3 MiB read in all. */
const spreadSamples = 128;

/**
 * Shannon entropy in bits per byte. Random (or encrypted) 16 KiB scores above 7.98; text, code,
 * database pages and filesystem metadata score well below 7. Compressed data also scores near 8
 * and passes for noise: the one kind of data this check cannot tell from an erased disk.
 */
export const noiseEntropy = 7.5;

/**
 * Reads the first MiB and evenly spread samples of the rest of the device, and says whether any
 * of it is neither zeros nor noise. It samples rather than reads the device, which on a
 * terabyte instance store would take minutes at boot: data that lies wholly between two sampled
 * places is not seen, which is why a device is also refused for any signature at all.
 */
export async function sampleContent(devicePath: string, sizeBytes: number): Promise<ContentSample> {
  const offsets = getSampleOffsets(sizeBytes);
  const handle = await open(devicePath, 'r');
  const found: ContentSample[] = [];
  try {
    // Several reads in flight: on an EBS volume each one is a network round trip.
    for (let start = 0; start < offsets.length; start += readsInFlight) {
      const batch = offsets.slice(start, start + readsInFlight);
      found.push(...(await Promise.all(batch.map((offset) => readSample(handle, offset)))));
      const data = found.find((sample) => sample.kind === 'data');
      if (data !== undefined) {
        return data;
      }
    }
  } finally {
    await handle.close();
  }

  return found.some((sample) => sample.kind === 'noise') ? { kind: 'noise' } : { kind: 'zeros' };
}

const readsInFlight = 16;

async function readSample(handle: FileHandle, offset: number): Promise<ContentSample> {
  const buffer = Buffer.alloc(sampleBytes);
  const { bytesRead } = await handle.read(buffer, 0, sampleBytes, offset);
  const block = buffer.subarray(0, bytesRead);
  if (isZeros(block)) {
    return { kind: 'zeros' };
  }

  const entropy = getEntropy(block);
  return entropy < noiseEntropy ? { kind: 'data', offset, entropy } : { kind: 'noise' };
}

/**
 * Whether sampled content lets a device count as blank: zeros always; noise only on an
 * instance-store disk, the one kind of disk that reads as noise when new.
 */
export function isBlankContent(content: ContentSample, instanceStore: boolean): boolean {
  return content.kind === 'zeros' || (content.kind === 'noise' && instanceStore);
}

/** For a refusal: what was found, and why it is not blank. */
export function describeContent(content: ContentSample): string {
  if (content.kind === 'noise') {
    return (
      'it reads as random bytes, which only an erased instance-store disk is when new ' +
      '(compressed or encrypted data looks the same)'
    );
  }

  if (content.kind === 'zeros') {
    return 'it reads as zeros';
  }

  const what =
    content.entropy < 1
      ? 'one byte value over and over'
      : `${content.entropy.toFixed(1)} bits of entropy per byte, below random noise`;
  return `the bytes at offset ${content.offset} are not zeros (${what})`;
}

/** Block-aligned offsets: the whole first MiB, then evenly spaced places up to the last block. */
export function getSampleOffsets(sizeBytes: number): number[] {
  const offsets: number[] = [];
  const blocks = Math.floor(sizeBytes / sampleBytes);
  const head = Math.min(blocks, headBytes / sampleBytes);
  for (let block = 0; block < head; block += 1) {
    offsets.push(block * sampleBytes);
  }

  const rest = blocks - head;
  if (rest <= 0) {
    return offsets;
  }

  const count = Math.min(rest, spreadSamples);
  for (let index = 0; index < count; index += 1) {
    // The last sample is the device's last block, where backup GPT headers and md 0.90/1.0
    // superblocks live.
    const block = head + Math.round(((index + 1) * (rest - 1)) / count);
    offsets.push(block * sampleBytes);
  }

  return [...new Set(offsets)];
}

const zeroBlock = Buffer.alloc(sampleBytes);

/** A native comparison with a block of zeros: a device of zeros is the common case at boot. */
function isZeros(block: Buffer): boolean {
  return block.equals(zeroBlock.subarray(0, block.length));
}

export function getEntropy(block: Uint8Array): number {
  const counts = new Uint32Array(256);
  for (const byte of block) {
    counts[byte] = (counts[byte] as number) + 1;
  }

  let entropy = 0;
  for (const count of counts) {
    if (count > 0) {
      const p = count / block.length;
      entropy -= p * Math.log2(p);
    }
  }

  return entropy;
}
