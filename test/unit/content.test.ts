import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  getEntropy,
  getSampleOffsets,
  isBlankContent,
  noiseEntropy,
  sampleBytes,
  sampleContent,
} from '../../agent/host/content.js';
import { makeTempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;

/** A sparse file of `size` bytes with the given blocks written at their offsets. */
async function makeDevice(
  t: { after(fn: () => Promise<void>): void },
  size: number,
  writes: [number, Buffer][] = [],
): Promise<string> {
  const temp = await makeTempDir('ctrvol-content');
  t.after(() => temp.cleanup());
  const file = path.join(temp.path, 'disk');
  await writeFile(file, '');
  const handle = await open(file, 'r+');
  await handle.truncate(size);
  for (const [offset, data] of writes) {
    await handle.write(data, 0, data.length, offset);
  }

  await handle.close();
  return file;
}

const records = (bytes: number) =>
  Buffer.from('customer record 0042; balance 17.20\n'.repeat(Math.ceil(bytes / 36))).subarray(
    0,
    bytes,
  );

describe('telling zeros and noise from data without a signature', () => {
  test('samples the whole first MiB, then evenly up to the last block', () => {
    const offsets = getSampleOffsets(1024 * MiB);
    assert.equal(offsets[0], 0);
    assert.equal(offsets[63], MiB - sampleBytes);
    assert.equal(offsets.at(-1), 1024 * MiB - sampleBytes);
    assert.equal(offsets.length, 64 + 128);
    assert.ok(offsets.every((offset) => offset % sampleBytes === 0));
    // A device smaller than a MiB is read whole, and one smaller than a sample not at all.
    assert.equal(getSampleOffsets(256 * 1024).length, 16);
    assert.deepEqual(getSampleOffsets(100), []);
  });

  test('random bytes score as noise and records as data', () => {
    assert.ok(getEntropy(randomBytes(sampleBytes)) > 7.98);
    assert.ok(getEntropy(records(sampleBytes)) < 5);
    assert.ok(getEntropy(Buffer.alloc(sampleBytes, 7)) === 0);
    assert.ok(noiseEntropy > 7 && noiseEntropy < 7.98);
  });

  test('a device of zeros is zeros, and one of random bytes is noise', async (t) => {
    assert.deepEqual(await sampleContent(await makeDevice(t, 64 * MiB), 64 * MiB), {
      kind: 'zeros',
    });
    const noisy = await makeDevice(t, 8 * MiB, [[0, randomBytes(8 * MiB)]]);
    assert.deepEqual(await sampleContent(noisy, 8 * MiB), { kind: 'noise' });
  });

  test('records at the start, or in the middle behind zeros, are data', async (t) => {
    const atStart = await makeDevice(t, 64 * MiB, [[0, records(8 * MiB)]]);
    const found = await sampleContent(atStart, 64 * MiB);
    assert.equal(found.kind, 'data');
    assert.equal(found.kind === 'data' && found.offset, 0);

    const middle = await makeDevice(t, 1024 * MiB, [[512 * MiB, records(8 * MiB)]]);
    const deep = await sampleContent(middle, 1024 * MiB);
    assert.equal(deep.kind, 'data');
    assert.ok(deep.kind === 'data' && deep.offset >= 512 * MiB && deep.offset < 520 * MiB);
  });

  test('noise counts as blank on an instance-store disk only; data never does', () => {
    assert.equal(isBlankContent({ kind: 'zeros' }, false), true);
    assert.equal(isBlankContent({ kind: 'noise' }, true), true);
    assert.equal(isBlankContent({ kind: 'noise' }, false), false);
    assert.equal(isBlankContent({ kind: 'data', offset: 0, entropy: 4 }, true), false);
  });
});
