import assert from 'node:assert/strict';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { createRunner } from '../../agent/exec.js';
import { createLogger } from '../../agent/log/logger.js';
import {
  buildManifest,
  compareManifests,
  getManifestDigest,
} from '../../agent/preserve/manifest.js';
import { makeTempDir } from '../helpers/temp.js';

const run = createRunner(createLogger({ format: 'text', level: 'silent' }));
const name = (dir: string, raw: string) =>
  Buffer.concat([Buffer.from(`${dir}/`), Buffer.from(raw, 'latin1')]);

describe('the copy manifest', () => {
  test('tells apart names that differ only in bytes that are not UTF-8', async (t) => {
    const temp = await makeTempDir('ctrvol-manifest');
    t.after(temp.cleanup);
    const source = path.join(temp.path, 'source');
    const copy = path.join(temp.path, 'copy');
    await Promise.all([mkdir(source), mkdir(copy)]);
    await writeFile(name(source, 'n\xff'), 'a');
    await writeFile(name(source, 'n\xfe'), 'a');
    await writeFile(name(copy, 'n\xff'), 'a');
    // Same mtimes everywhere, so that only the missing name differs.
    for (const file of [
      source,
      copy,
      name(source, 'n\xff'),
      name(source, 'n\xfe'),
      name(copy, 'n\xff'),
    ]) {
      await utimes(file, 1e9, 1e9);
    }

    const differences = compareManifests(
      await buildManifest(run, source),
      await buildManifest(run, copy),
    );

    assert.deepEqual(differences, ['missing: /n\\xfe']);
  });

  test('gives the same digest for the same tree and another once a byte changes', async (t) => {
    const temp = await makeTempDir('ctrvol-manifest');
    t.after(temp.cleanup);
    await writeFile(path.join(temp.path, 'a'), 'x');
    const first = getManifestDigest(await buildManifest(run, temp.path, { content: true }));
    const again = getManifestDigest(await buildManifest(run, temp.path, { content: true }));
    await writeFile(path.join(temp.path, 'a'), 'y');
    const changed = getManifestDigest(await buildManifest(run, temp.path, { content: true }));

    assert.equal(again, first);
    assert.notEqual(changed, first);
  });
});
