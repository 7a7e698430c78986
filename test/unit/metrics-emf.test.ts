import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, isCtrvolError } from '../../agent/errors.js';
import type { FilesystemUsage } from '../../agent/host/usage.js';
import { appendEmf, emfMetrics, renderEmf } from '../../agent/metrics/emf.js';
import type { MonitorSnapshot } from '../../agent/monitor/snapshot.js';
import { makeTempDir, type TempDir } from '../helpers/temp.js';
import { GiB, makeSnapshot, makeUsage, tickAt } from './fixtures/snapshot.js';

/**
 * The EMF lines are checked against the CloudWatch Embedded Metric Format specification with the
 * validator below, written from the specification's text and JSON schema: member names and types,
 * the limits (100 metrics per directive, 30 keys per dimension set, name lengths), the units
 * CloudWatch knows, and the rule that every dimension and metric named in `_aws` is a top-level
 * member of the right type.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const units = new Set([
  'Seconds',
  'Microseconds',
  'Milliseconds',
  'Bytes',
  'Kilobytes',
  'Megabytes',
  'Gigabytes',
  'Terabytes',
  'Bits',
  'Kilobits',
  'Megabits',
  'Gigabits',
  'Terabits',
  'Percent',
  'Count',
  'Bytes/Second',
  'Kilobytes/Second',
  'Megabytes/Second',
  'Gigabytes/Second',
  'Terabytes/Second',
  'Bits/Second',
  'Kilobits/Second',
  'Megabits/Second',
  'Gigabits/Second',
  'Terabits/Second',
  'Count/Second',
  'None',
]);

function isObject(value: Json | undefined): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isString(value: Json | undefined, min: number, max: number): value is string {
  return typeof value === 'string' && value.length >= min && value.length <= max;
}

/** Every way the document breaks the specification; empty when it is valid. */
function validateEmf(document: Json): string[] {
  const problems: string[] = [];
  const fail = (where: string, what: string) => problems.push(`${where}: ${what}`);
  // Objects the specification defines "MUST NOT contain any additional members".
  const onlyMembers = (where: string, object: { [key: string]: Json }, allowed: string[]) => {
    for (const key of Object.keys(object)) {
      if (!allowed.includes(key)) fail(where, `unexpected member ${key}`);
    }
  };

  if (!isObject(document)) {
    return ['root: not an object'];
  }

  const aws = document._aws;
  if (!isObject(aws)) {
    return ['_aws: missing or not an object'];
  }

  onlyMembers('_aws', aws, ['Timestamp', 'CloudWatchMetrics']);
  const timestamp = aws.Timestamp;
  if (typeof timestamp !== 'number' || !Number.isInteger(timestamp) || timestamp < 0) {
    fail('_aws.Timestamp', 'not a whole number of milliseconds since the epoch');
  }

  const directives = aws.CloudWatchMetrics;
  if (!Array.isArray(directives)) {
    return [...problems, '_aws.CloudWatchMetrics: not an array'];
  }

  directives.forEach((directive, index) => {
    const where = `_aws.CloudWatchMetrics[${index}]`;
    if (!isObject(directive)) {
      fail(where, 'not an object');
      return;
    }

    onlyMembers(where, directive, ['Namespace', 'Dimensions', 'Metrics']);
    if (!isString(directive.Namespace, 1, 1024)) {
      fail(`${where}.Namespace`, 'not a string of 1 to 1024 characters');
    }

    const dimensionSets = directive.Dimensions;
    if (!Array.isArray(dimensionSets) || dimensionSets.length < 1) {
      fail(`${where}.Dimensions`, 'not an array of at least one dimension set');
    } else {
      dimensionSets.forEach((set, setIndex) => {
        const setWhere = `${where}.Dimensions[${setIndex}]`;
        if (!Array.isArray(set) || set.length > 30) {
          fail(setWhere, 'not an array of at most 30 dimension keys');
          return;
        }

        for (const key of set) {
          if (!isString(key, 1, 250)) {
            fail(setWhere, `${JSON.stringify(key)} is not a string of 1 to 250 characters`);
          } else if (!isString(document[key], 1, 1024)) {
            fail(setWhere, `the target member ${key} is not a string of 1 to 1024 characters`);
          }
        }
      });
    }

    const metrics = directive.Metrics;
    if (!Array.isArray(metrics) || metrics.length > 100) {
      fail(`${where}.Metrics`, 'not an array of at most 100 metric definitions');
      return;
    }

    const seen = new Set<string>();
    metrics.forEach((metric, metricIndex) => {
      const metricWhere = `${where}.Metrics[${metricIndex}]`;
      if (!isObject(metric)) {
        fail(metricWhere, 'not an object');
        return;
      }

      onlyMembers(metricWhere, metric, ['Name', 'Unit', 'StorageResolution']);
      const name = metric.Name;
      if (!isString(name, 1, 1024)) {
        fail(`${metricWhere}.Name`, 'not a string of 1 to 1024 characters');
        return;
      }

      if (seen.has(name)) fail(`${metricWhere}.Name`, `${name} is defined twice`);
      seen.add(name);
      if (
        metric.Unit !== undefined &&
        !(typeof metric.Unit === 'string' && units.has(metric.Unit))
      ) {
        fail(`${metricWhere}.Unit`, `${JSON.stringify(metric.Unit)} is not a CloudWatch unit`);
      }

      if (
        metric.StorageResolution !== undefined &&
        ![1, 60].includes(metric.StorageResolution as number)
      ) {
        fail(`${metricWhere}.StorageResolution`, 'neither 1 nor 60');
      }

      const target = document[name];
      const numeric = (value: Json | undefined) =>
        typeof value === 'number' && Number.isFinite(value);
      const valid = Array.isArray(target)
        ? target.length <= 100 && target.every(numeric)
        : numeric(target);
      if (!valid) {
        fail(`${metricWhere}.Name`, `the target member ${name} is not a number or numbers`);
      }
    });
  });

  return problems;
}

const options = {
  namespace: 'ctrvol',
  dimensions: { ClusterName: 'prod-eu', InstanceId: 'i-0123456789abcdef0' },
};

/** Renders, checks that it is one line of valid EMF, and returns the parsed object. */
function renderValid(
  snapshot: MonitorSnapshot,
  renderOptions: Parameters<typeof renderEmf>[1] = options,
): { [key: string]: Json } {
  const line = renderEmf(snapshot, renderOptions);
  assert.ok(!line.includes('\n'), 'the EMF text is more than one line');
  const document = JSON.parse(line) as Json;
  assert.deepEqual(validateEmf(document), []);
  assert.ok(isObject(document));
  return document;
}

function getDefinitions(document: { [key: string]: Json }): { Name: string; Unit: string }[] {
  const aws = document._aws as {
    CloudWatchMetrics: { Metrics: { Name: string; Unit: string }[] }[];
  };
  return aws.CloudWatchMetrics[0]?.Metrics ?? [];
}

describe('the EMF validator written from the specification', () => {
  const valid = JSON.parse(renderEmf(makeSnapshot(), options)) as { [key: string]: Json };

  // Each edit breaks one rule, to show that the validator is strict about it.
  const broken: [string, (document: any) => void][] = [
    ['a metric value that is null', (d) => (d.ImagesPruned = null)],
    ['a metric value that is a string', (d) => (d.ImagesPruned = '3')],
    ['a metric named but missing', (d) => delete d.BytesFreed],
    ['a dimension value that is a number', (d) => (d.ClusterName = 7)],
    ['a dimension named but missing', (d) => delete d.InstanceId],
    ['a timestamp in seconds with a fraction', (d) => (d._aws.Timestamp = 1740830400.5)],
    ['a timestamp that is a string', (d) => (d._aws.Timestamp = '1740830400000')],
    ['a unit CloudWatch does not know', (d) => (d._aws.CloudWatchMetrics[0].Metrics[0].Unit = '%')],
    ['an extra member in a directive', (d) => (d._aws.CloudWatchMetrics[0].Extra = 1)],
    ['an extra member in _aws', (d) => (d._aws.LogGroupName = 'x')],
    [
      'a dimension set of 31 keys',
      (d) => {
        const keys = Array.from({ length: 31 }, (_, i) => `D${i}`);
        for (const key of keys) d[key] = 'v';
        d._aws.CloudWatchMetrics[0].Dimensions = [keys];
      },
    ],
    ['no dimension set at all', (d) => (d._aws.CloudWatchMetrics[0].Dimensions = [])],
    [
      '101 metric definitions',
      (d) => {
        const metrics = Array.from({ length: 101 }, (_, i) => ({ Name: `M${i}`, Unit: 'Count' }));
        for (const { Name } of metrics) d[Name] = 1;
        d._aws.CloudWatchMetrics[0].Metrics = metrics;
      },
    ],
    [
      'a metric defined twice',
      (d) => d._aws.CloudWatchMetrics[0].Metrics.push({ Name: 'BytesFreed' }),
    ],
    ['a namespace that is empty', (d) => (d._aws.CloudWatchMetrics[0].Namespace = '')],
  ];

  test('it accepts the line renderEmf writes', () => {
    assert.deepEqual(validateEmf(valid), []);
  });

  for (const [name, edit] of broken) {
    test(`it rejects ${name}`, () => {
      const document = structuredClone(valid);
      edit(document);
      assert.notDeepEqual(validateEmf(document), []);
    });
  }
});

describe('renderEmf', () => {
  test('a mounted volume gets every metric with its unit, under the namespace and dimensions', () => {
    const document = renderValid(makeSnapshot());
    const aws = document._aws as { Timestamp: number; CloudWatchMetrics: Json[] };
    assert.equal(aws.Timestamp, tickAt.getTime());
    assert.equal(aws.CloudWatchMetrics.length, 1);
    assert.deepEqual((aws.CloudWatchMetrics[0] as { Namespace: string }).Namespace, 'ctrvol');
    assert.deepEqual((aws.CloudWatchMetrics[0] as { Dimensions: Json }).Dimensions, [
      ['ClusterName', 'InstanceId'],
    ]);
    assert.equal(document.ClusterName, 'prod-eu');
    assert.equal(document.InstanceId, 'i-0123456789abcdef0');

    const units = Object.fromEntries(getDefinitions(document).map((m) => [m.Name, m.Unit]));
    assert.deepEqual(units, emfMetrics);
    assert.equal(units.RootVolumeUtilization, 'Percent');
    assert.equal(units.ContainerdVolumeUtilization, 'Percent');
    assert.equal(units.RootInodeUtilization, 'Percent');
    assert.equal(units.ContainerdInodeUtilization, 'Percent');
    assert.equal(units.ImagesPruned, 'Count');
    assert.equal(units.BytesFreed, 'Bytes');

    assert.equal(document.RootVolumeUtilization, 25);
    assert.equal(document.RootInodeUtilization, 10);
    assert.equal(document.RootAvailableBytes, 15 * GiB);
    assert.equal(document.ContainerdVolumeUtilization, 75);
    assert.equal(document.ContainerdInodeUtilization, 2);
    assert.equal(document.ContainerdAvailableBytes, 25 * GiB);
    assert.equal(document.ContainerdVolumeMounted, 1);
    assert.equal(document.ContainerdVolumeReadOnly, 0);
    assert.equal(document.ImagesPruned, 0);
    assert.equal(document.BytesFreed, 0);
    assert.equal(document.TickSucceeded, 1);
  });

  test('utilization is a percentage rounded to two decimals', () => {
    const root = makeUsage(3 * GiB, 2 * GiB, 3, 2);
    const document = renderValid(makeSnapshot({ root }));
    assert.equal(document.RootVolumeUtilization, 33.33);
    assert.equal(document.RootInodeUtilization, 33.33);
  });

  test('a volume that is not mounted leaves its metrics out instead of writing null', () => {
    const document = renderValid(makeSnapshot({ volumeMounted: false, volume: undefined }));
    const names = getDefinitions(document).map((metric) => metric.Name);
    for (const name of [
      'ContainerdVolumeUtilization',
      'ContainerdInodeUtilization',
      'ContainerdAvailableBytes',
      'ContainerdVolumeReadOnly',
    ]) {
      assert.ok(!names.includes(name), `${name} is defined`);
      assert.ok(!(name in document), `${name} is in the line`);
    }

    assert.equal(document.ContainerdVolumeMounted, 0);
    assert.equal(document.RootVolumeUtilization, 25);
  });

  test('a volume gone read-only is reported as such', () => {
    const document = renderValid(makeSnapshot({ volumeReadOnly: true }));
    assert.equal(document.ContainerdVolumeReadOnly, 1);
    assert.equal(document.ContainerdVolumeMounted, 1);
  });

  test('a prune in this tick is counted, and one from an earlier tick is not counted again', () => {
    const prune = (at: Date) => ({
      runsTotal: 2,
      imagesRemovedTotal: 9,
      bytesFreedTotal: 6 * GiB,
      last: { at, imagesRemoved: 4, bytesFreed: 3 * GiB, reachedTarget: true },
    });

    const now = renderValid(makeSnapshot({ prune: prune(new Date(tickAt.getTime() + 2500)) }));
    assert.equal(now.ImagesPruned, 4);
    assert.equal(now.BytesFreed, 3 * GiB);

    const earlier = renderValid(
      makeSnapshot({ prune: prune(new Date(tickAt.getTime() - 300_000)) }),
    );
    assert.equal(earlier.ImagesPruned, 0);
    assert.equal(earlier.BytesFreed, 0);
  });

  test('a filesystem without an inode count has no inode utilization', () => {
    const root = { ...makeUsage(20 * GiB, 15 * GiB, 1, 1), totalInodes: 0, freeInodes: 0 };
    const document = renderValid(makeSnapshot({ root }));
    assert.ok(!('RootInodeUtilization' in document));
  });

  test('no dimensions give one empty dimension set, which the specification allows', () => {
    const document = renderValid(makeSnapshot(), { namespace: 'ctrvol', dimensions: {} });
    const aws = document._aws as { CloudWatchMetrics: { Dimensions: Json }[] };
    assert.deepEqual(aws.CloudWatchMetrics[0]?.Dimensions, [[]]);
  });

  test('thirty dimensions are accepted', () => {
    const dimensions = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`D${i}`, 'v']));
    renderValid(makeSnapshot(), { namespace: 'ctrvol', dimensions });
  });

  const refused: [string, Parameters<typeof renderEmf>[1]][] = [
    [
      'thirty-one dimensions',
      {
        namespace: 'ctrvol',
        dimensions: Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`D${i}`, 'v'])),
      },
    ],
    [
      'a dimension with the name of a metric',
      { namespace: 'ctrvol', dimensions: { BytesFreed: 'x' } },
    ],
    ['a dimension named _aws', { namespace: 'ctrvol', dimensions: { _aws: 'x' } }],
    ['an empty dimension value', { namespace: 'ctrvol', dimensions: { Cluster: '' } }],
    [
      'a dimension value of 1025 characters',
      { namespace: 'ctrvol', dimensions: { C: 'x'.repeat(1025) } },
    ],
    ['an empty namespace', { namespace: '', dimensions: {} }],
    ['a namespace under AWS/', { namespace: 'AWS/EC2', dimensions: {} }],
    ['a namespace of 256 characters', { namespace: 'n'.repeat(256), dimensions: {} }],
  ];

  for (const [name, badOptions] of refused) {
    test(`it refuses ${name} with a config error`, () => {
      assert.throws(() => renderEmf(makeSnapshot(), badOptions), ConfigError);
    });
  }
});

describe('appendEmf', () => {
  let temp: TempDir;
  let savedUmask: number;

  before(async () => {
    temp = await makeTempDir('ctrvol-emf');
    savedUmask = process.umask(0o077);
  });

  after(async () => {
    process.umask(savedUmask);
    await temp.cleanup();
  });

  test('it creates the file with mode 0644 under a 0077 umask and appends one line per call', async () => {
    const file = path.join(temp.path, 'new', 'ctrvol-emf.log');
    await mkdir(path.dirname(file));
    const first = renderEmf(makeSnapshot(), options);
    const second = renderEmf(makeSnapshot({ at: new Date(tickAt.getTime() + 300_000) }), options);
    await appendEmf(file, first);
    await appendEmf(file, second);

    assert.equal(await readFile(file, 'utf8'), `${first}\n${second}\n`);
    assert.equal(((await stat(file)).mode & 0o777).toString(8), '644');
    for (const line of (await readFile(file, 'utf8')).trimEnd().split('\n')) {
      assert.deepEqual(validateEmf(JSON.parse(line) as Json), []);
    }
  });

  test('it keeps what is in the file already and the mode its owner gave it', async () => {
    const file = path.join(temp.path, 'existing.log');
    await writeFile(file, 'earlier line\n');
    await chmod(file, 0o640);
    await appendEmf(file, '{"a":1}');
    assert.equal(await readFile(file, 'utf8'), 'earlier line\n{"a":1}\n');
    assert.equal(((await stat(file)).mode & 0o777).toString(8), '640');
  });

  test('a missing folder fails with an error that names the file', async () => {
    const file = path.join(temp.path, 'no-such-dir', 'ctrvol-emf.log');
    await assert.rejects(appendEmf(file, '{}'), (error: unknown) => {
      assert.ok(isCtrvolError(error));
      assert.equal(error.exitCode, 1);
      assert.ok(error.message.includes(file), error.message);
      return true;
    });
  });

  test('a line holding a line feed is refused', async () => {
    const file = path.join(temp.path, 'refused.log');
    await assert.rejects(appendEmf(file, '{}\n{}'), /line feed/);
  });
});
