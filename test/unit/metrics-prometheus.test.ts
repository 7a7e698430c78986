import assert from 'node:assert/strict';
import { lstat, mkdir, readFile, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isCtrvolError, StepError } from '../../agent/errors.js';
import type { FilesystemUsage } from '../../agent/host/usage.js';
import { renderPrometheus, writeTextfile } from '../../agent/metrics/prometheus.js';
import type { MonitorSnapshot } from '../../agent/monitor/snapshot.js';
import { makeTempDir, type TempDir } from '../helpers/temp.js';
import { GiB, makeSnapshot, makeUsage, tickAt } from './fixtures/snapshot.js';

/**
 * The textfile is checked by parsing it with parse-prometheus-text-format, a port of the
 * Prometheus client's own parser, and asserting on what the parser returns: names, types, help,
 * labels (unescaped by the parser) and values.
 */

interface ParsedSample {
  value?: string;
  labels?: Record<string, string>;
  timestamp_ms?: string;
}

interface ParsedFamily {
  name: string;
  help: string;
  type: string;
  metrics: ParsedSample[];
}

// The package is CommonJS without type declarations: this is the one function it exports.
const parsePrometheusTextFormat = createRequire(import.meta.url)(
  'parse-prometheus-text-format',
) as (text: string) => ParsedFamily[];

// From the Prometheus data model: metric names and label names.
const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface Family {
  type: string;
  help: string;
  samples: { labels: Record<string, string>; value: number }[];
}

/** Parses the text and checks what the format and ctrvol's conventions require of every family. */
function parse(text: string): Map<string, Family> {
  assert.ok(text.endsWith('\n'), 'the text does not end with a line feed');
  const families = new Map<string, Family>();
  for (const family of parsePrometheusTextFormat(text)) {
    assert.match(family.name, metricName);
    assert.ok(family.name.startsWith('ctrvol_'), `${family.name} lacks the ctrvol_ prefix`);
    assert.ok(!families.has(family.name), `${family.name} appears twice`);
    assert.ok(['GAUGE', 'COUNTER'].includes(family.type), `${family.name} is ${family.type}`);
    assert.notEqual(family.help, '', `${family.name} has no HELP`);
    assert.equal(
      family.type === 'COUNTER',
      family.name.endsWith('_total'),
      `${family.name}: counters, and only counters, end in _total`,
    );

    const samples = family.metrics.map((sample) => {
      assert.equal(sample.timestamp_ms, undefined, `${family.name} has a sample timestamp`);
      assert.ok(sample.value !== undefined, `${family.name} has a sample without a value`);
      const value = Number(sample.value);
      assert.ok(Number.isFinite(value), `${family.name} has the value ${sample.value}`);
      for (const name of Object.keys(sample.labels ?? {})) {
        assert.match(name, labelName);
      }

      return { labels: sample.labels ?? {}, value };
    });
    families.set(family.name, { type: family.type, help: family.help, samples });
  }

  return families;
}

/** The value of the one sample of a family that has these labels, or undefined if none has. */
function valueOf(
  families: Map<string, Family>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const family = families.get(name);
  assert.ok(family !== undefined, `${name} is missing`);
  const matching = family.samples.filter(
    (sample) => JSON.stringify(sample.labels) === JSON.stringify(labels),
  );
  assert.ok(matching.length <= 1, `${name} has ${matching.length} samples with the same labels`);
  return matching[0]?.value;
}

const rootLabels = { filesystem: 'root', mountpoint: '/' };
const volumeLabels = { filesystem: 'containerd', mountpoint: '/var/lib/containerd' };

describe('renderPrometheus', () => {
  test('a mounted volume gets sizes, ratios and inode counts for both filesystems', () => {
    const families = parse(renderPrometheus(makeSnapshot()));

    assert.equal(valueOf(families, 'ctrvol_filesystem_size_bytes', rootLabels), 20 * GiB);
    assert.equal(valueOf(families, 'ctrvol_filesystem_avail_bytes', rootLabels), 15 * GiB);
    assert.equal(valueOf(families, 'ctrvol_filesystem_used_bytes', rootLabels), 5 * GiB);
    assert.equal(valueOf(families, 'ctrvol_filesystem_usage_ratio', rootLabels), 0.25);
    assert.equal(valueOf(families, 'ctrvol_filesystem_inodes', rootLabels), 1_000_000);
    assert.equal(valueOf(families, 'ctrvol_filesystem_inodes_free', rootLabels), 900_000);
    assert.equal(valueOf(families, 'ctrvol_filesystem_inode_usage_ratio', rootLabels), 0.1);

    assert.equal(valueOf(families, 'ctrvol_filesystem_size_bytes', volumeLabels), 100 * GiB);
    assert.equal(valueOf(families, 'ctrvol_filesystem_avail_bytes', volumeLabels), 25 * GiB);
    assert.equal(valueOf(families, 'ctrvol_filesystem_used_bytes', volumeLabels), 75 * GiB);
    assert.equal(valueOf(families, 'ctrvol_filesystem_usage_ratio', volumeLabels), 0.75);
    assert.equal(valueOf(families, 'ctrvol_filesystem_inodes', volumeLabels), 50_000_000);
    assert.equal(valueOf(families, 'ctrvol_filesystem_inodes_free', volumeLabels), 49_000_000);
    assert.equal(valueOf(families, 'ctrvol_filesystem_inode_usage_ratio', volumeLabels), 0.02);

    const mount = { mountpoint: '/var/lib/containerd' };
    assert.equal(valueOf(families, 'ctrvol_volume_mounted', mount), 1);
    assert.equal(valueOf(families, 'ctrvol_volume_read_only', mount), 0);
    assert.equal(valueOf(families, 'ctrvol_last_tick_timestamp_seconds'), tickAt.getTime() / 1000);
    assert.equal(valueOf(families, 'ctrvol_last_tick_success'), 1);
    assert.equal(valueOf(families, 'ctrvol_setup_success'), 1);
    assert.equal(
      valueOf(families, 'ctrvol_setup_timestamp_seconds'),
      Date.parse('2025-03-01T11:00:00.000Z') / 1000,
    );
  });

  test('every value is a gauge except the prune totals, which are counters', () => {
    const families = parse(renderPrometheus(makeSnapshot()));
    const counters = [...families].filter(([, family]) => family.type === 'COUNTER');
    assert.deepEqual(counters.map(([name]) => name).sort(), [
      'ctrvol_prune_freed_bytes_total',
      'ctrvol_prune_images_removed_total',
      'ctrvol_prune_runs_total',
    ]);
  });

  test('a volume that is not mounted has no filesystem samples and reports mounted 0', () => {
    // What statfs would give for an empty mount point is the root disk: the monitor passes no
    // usage then, and the renderer must not invent one even if it did.
    const snapshot = makeSnapshot({ volumeMounted: false, volume: makeUsage(GiB, GiB, 10, 10) });
    const families = parse(renderPrometheus(snapshot));

    for (const name of [
      'ctrvol_filesystem_size_bytes',
      'ctrvol_filesystem_usage_ratio',
      'ctrvol_filesystem_inodes',
      'ctrvol_filesystem_inode_usage_ratio',
    ]) {
      const filesystems = families.get(name)?.samples.map((sample) => sample.labels.filesystem);
      assert.deepEqual(filesystems, ['root'], name);
    }

    const mount = { mountpoint: '/var/lib/containerd' };
    assert.equal(valueOf(families, 'ctrvol_volume_mounted', mount), 0);
    assert.equal(valueOf(families, 'ctrvol_volume_read_only', mount), 0);
  });

  test('a volume gone read-only after I/O errors reports read_only 1 and keeps its usage', () => {
    const families = parse(renderPrometheus(makeSnapshot({ volumeReadOnly: true })));
    const mount = { mountpoint: '/var/lib/containerd' };
    assert.equal(valueOf(families, 'ctrvol_volume_mounted', mount), 1);
    assert.equal(valueOf(families, 'ctrvol_volume_read_only', mount), 1);
    assert.equal(valueOf(families, 'ctrvol_filesystem_usage_ratio', volumeLabels), 0.75);
  });

  test('without any prune the totals are 0 and the last-prune families have no sample', () => {
    const families = parse(renderPrometheus(makeSnapshot()));
    assert.equal(valueOf(families, 'ctrvol_prune_runs_total'), 0);
    assert.equal(valueOf(families, 'ctrvol_prune_images_removed_total'), 0);
    assert.equal(valueOf(families, 'ctrvol_prune_freed_bytes_total'), 0);
    for (const name of [
      'ctrvol_prune_last_timestamp_seconds',
      'ctrvol_prune_last_success',
      'ctrvol_prune_last_images_removed',
      'ctrvol_prune_last_freed_bytes',
    ]) {
      assert.deepEqual(families.get(name)?.samples, [], name);
    }
  });

  test('after a prune the totals and the last prune are reported', () => {
    const prunedAt = new Date('2025-03-01T12:00:03.500Z');
    const snapshot = makeSnapshot({
      prune: {
        runsTotal: 3,
        imagesRemovedTotal: 17,
        bytesFreedTotal: 12 * GiB,
        last: { at: prunedAt, imagesRemoved: 5, bytesFreed: 4 * GiB, reachedTarget: false },
      },
    });
    const families = parse(renderPrometheus(snapshot));
    assert.equal(valueOf(families, 'ctrvol_prune_runs_total'), 3);
    assert.equal(valueOf(families, 'ctrvol_prune_images_removed_total'), 17);
    assert.equal(valueOf(families, 'ctrvol_prune_freed_bytes_total'), 12 * GiB);
    assert.equal(valueOf(families, 'ctrvol_prune_last_timestamp_seconds'), 1740830403.5);
    assert.equal(valueOf(families, 'ctrvol_prune_last_success'), 0);
    assert.equal(valueOf(families, 'ctrvol_prune_last_images_removed'), 5);
    assert.equal(valueOf(families, 'ctrvol_prune_last_freed_bytes'), 4 * GiB);
  });

  test('a failed tick, a failed setup and an unknown setup are told apart', () => {
    const failed = parse(
      renderPrometheus(
        makeSnapshot({ tickSucceeded: false, setup: { outcome: 'failed', at: tickAt } }),
      ),
    );
    assert.equal(valueOf(failed, 'ctrvol_last_tick_success'), 0);
    assert.equal(valueOf(failed, 'ctrvol_setup_success'), 0);
    assert.equal(valueOf(failed, 'ctrvol_setup_timestamp_seconds'), tickAt.getTime() / 1000);

    const unknown = parse(
      renderPrometheus(makeSnapshot({ setup: { outcome: 'unknown', at: undefined } })),
    );
    assert.deepEqual(unknown.get('ctrvol_setup_success')?.samples, []);
    assert.deepEqual(unknown.get('ctrvol_setup_timestamp_seconds')?.samples, []);
  });

  test('a filesystem without an inode count gets no inode ratio rather than a false 0', () => {
    const root = { ...makeUsage(20 * GiB, 15 * GiB, 1, 1), totalInodes: 0, freeInodes: 0 };
    const families = parse(renderPrometheus(makeSnapshot({ root })));
    assert.equal(valueOf(families, 'ctrvol_filesystem_inode_usage_ratio', rootLabels), undefined);
    assert.equal(valueOf(families, 'ctrvol_filesystem_inodes', rootLabels), 0);
  });

  test('a mount point holding a double quote, a backslash and a line feed survives as a label', () => {
    const mountPoint = '/var/lib/odd "quoted" \\back\\slash\nnext line';
    const text = renderPrometheus(makeSnapshot({ volumeMountPoint: mountPoint }));
    const families = parse(text);
    const labels = { filesystem: 'containerd', mountpoint: mountPoint };
    assert.equal(valueOf(families, 'ctrvol_filesystem_size_bytes', labels), 100 * GiB);
    assert.equal(valueOf(families, 'ctrvol_volume_mounted', { mountpoint: mountPoint }), 1);
    // The raw line feed must not reach the text, where it would end the sample line.
    assert.ok(!text.includes('\nnext line'), 'the line feed in the label was not escaped');
  });
});

describe('writeTextfile', () => {
  let temp: TempDir;
  let savedUmask: number;

  before(async () => {
    temp = await makeTempDir('ctrvol-textfile');
    // The unit runs with UMask=0077; the file must still come out readable by node_exporter.
    savedUmask = process.umask(0o077);
  });

  after(async () => {
    process.umask(savedUmask);
    await temp.cleanup();
  });

  async function makeDir(name: string): Promise<string> {
    const dir = path.join(temp.path, name);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async function getMode(file: string): Promise<number> {
    return (await stat(file)).mode & 0o777;
  }

  test('it writes the text with mode 0644 even under a 0077 umask and leaves no temporary file', async () => {
    const dir = await makeDir('fresh');
    const file = path.join(dir, 'ctrvol.prom');
    await writeTextfile(file, 'ctrvol_up 1\n');
    assert.equal(await readFile(file, 'utf8'), 'ctrvol_up 1\n');
    assert.equal((await getMode(file)).toString(8), '644');
    assert.deepEqual(await readdir(dir), ['ctrvol.prom']);
  });

  test('it replaces the file by renaming a new one over it, so a reader never sees half of it', async () => {
    const dir = await makeDir('replace');
    const file = path.join(dir, 'ctrvol.prom');
    await writeFile(file, 'old 1\n', { mode: 0o644 });
    const before = await stat(file);

    await writeTextfile(file, 'new 2\n');
    const after = await stat(file);
    // A new inode: the old file was not truncated and rewritten in place.
    assert.notEqual(after.ino, before.ino);
    assert.equal(await readFile(file, 'utf8'), 'new 2\n');
    assert.equal((await getMode(file)).toString(8), '644');
    assert.deepEqual(await readdir(dir), ['ctrvol.prom']);
  });

  test('it overwrites a temporary file left behind by a crash', async () => {
    const dir = await makeDir('leftover');
    const file = path.join(dir, 'ctrvol.prom');
    await writeFile(`${file}.tmp`, 'half a fil', { mode: 0o600 });
    await writeTextfile(file, 'whole 1\n');
    assert.equal(await readFile(file, 'utf8'), 'whole 1\n');
    assert.equal((await getMode(file)).toString(8), '644');
    assert.deepEqual(await readdir(dir), ['ctrvol.prom']);
  });

  test('it refuses to follow a symlink planted at the temporary path', async () => {
    const dir = await makeDir('planted');
    const file = path.join(dir, 'ctrvol.prom');
    const victim = path.join(temp.path, 'victim');
    await writeFile(victim, 'precious\n');
    await symlink(victim, `${file}.tmp`);

    await assert.rejects(writeTextfile(file, 'x 1\n'), StepError);
    assert.equal(await readFile(victim, 'utf8'), 'precious\n');
    await assert.rejects(lstat(file), { code: 'ENOENT' });
  });

  function assertNamesFile(file: string) {
    return (error: unknown) => {
      assert.ok(isCtrvolError(error), `not a ctrvol error: ${String(error)}`);
      assert.equal(error.exitCode, 1);
      assert.ok(
        error.message.includes(file),
        `the message does not name ${file}: ${error.message}`,
      );
      return true;
    };
  }

  test('a missing folder fails with an error that names the file', async () => {
    const file = path.join(temp.path, 'no-such-dir', 'ctrvol.prom');
    await assert.rejects(writeTextfile(file, 'x 1\n'), assertNamesFile(file));
  });

  test('a folder that is a file fails with an error that names the file', async () => {
    const notDir = path.join(temp.path, 'not-a-dir');
    await writeFile(notDir, '');
    const file = path.join(notDir, 'ctrvol.prom');
    await assert.rejects(writeTextfile(file, 'x 1\n'), assertNamesFile(file));
  });

  test('when the temporary file cannot be written the old file is left intact', async () => {
    const dir = await makeDir('blocked');
    const file = path.join(dir, 'ctrvol.prom');
    await writeFile(file, 'old 1\n', { mode: 0o644 });
    // A directory in the temporary file's place makes open() fail with EISDIR.
    await mkdir(`${file}.tmp`);
    await assert.rejects(writeTextfile(file, 'new 2\n'), assertNamesFile(file));
    assert.equal(await readFile(file, 'utf8'), 'old 1\n');
  });

  test('when the rename fails the temporary file is removed', async () => {
    const dir = await makeDir('rename');
    // A directory where the file should be: rename(2) refuses to put a file over it.
    const file = path.join(dir, 'ctrvol.prom');
    await mkdir(file);
    await assert.rejects(writeTextfile(file, 'new 2\n'), assertNamesFile(file));
    assert.deepEqual(await readdir(dir), ['ctrvol.prom']);
    assert.ok((await stat(file)).isDirectory());
  });

  test('the text renderPrometheus makes round-trips through the file', async () => {
    const dir = await makeDir('round-trip');
    const file = path.join(dir, 'ctrvol.prom');
    const text = renderPrometheus(makeSnapshot());
    await writeTextfile(file, text);
    const families = parse(await readFile(file, 'utf8'));
    assert.equal(valueOf(families, 'ctrvol_filesystem_usage_ratio', volumeLabels), 0.75);
  });
});
