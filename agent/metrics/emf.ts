import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, StepError } from '../errors.js';
import type { FilesystemUsage } from '../host/usage.js';
import type { MonitorSnapshot } from '../monitor/snapshot.js';
import { reason } from './prometheus.js';

/**
 * The monitor's view as CloudWatch Embedded Metric Format: one JSON object per line, which the
 * CloudWatch agent picks up from a file it tails and turns into metrics. The structure follows
 * the EMF specification: an `_aws` member holding the timestamp in milliseconds and one metric
 * directive (namespace, one dimension set, metric definitions), with every dimension value and
 * metric value as a top-level member of the same object.
 *
 * A metric whose value is not known is left out of both the directive and the object: the
 * specification requires a numeric value for every metric named, so null would make CloudWatch
 * reject the whole line.
 */

/** CloudWatch units the lines use; the specification allows these and a few more. */
export type EmfUnit = 'Percent' | 'Count' | 'Bytes' | 'None';

export interface EmfOptions {
  namespace: string;
  /** Dimension names and values; every metric of the line is published under all of them. */
  dimensions: Record<string, string>;
}

/** Every metric a line may carry, with its unit. */
export const emfMetrics = {
  RootVolumeUtilization: 'Percent',
  RootInodeUtilization: 'Percent',
  RootAvailableBytes: 'Bytes',
  ContainerdVolumeUtilization: 'Percent',
  ContainerdInodeUtilization: 'Percent',
  ContainerdAvailableBytes: 'Bytes',
  ContainerdVolumeMounted: 'None',
  ContainerdVolumeReadOnly: 'None',
  ImagesPruned: 'Count',
  BytesFreed: 'Bytes',
  TickSucceeded: 'None',
} as const satisfies Record<string, EmfUnit>;

export type EmfMetricName = keyof typeof emfMetrics;

/**
 * Limits from the EMF specification and the CloudWatch API. Namespaces and dimension names
 * follow the stricter of the two (PutMetricData takes namespaces up to 255 characters, EMF up to
 * 1024; EMF takes dimension names up to 250).
 */
export const emfLimits = {
  metricsPerDirective: 100,
  dimensionsPerSet: 30,
  namespaceLength: 255,
  dimensionNameLength: 250,
  dimensionValueLength: 1024,
  metricNameLength: 1024,
} as const;

export function renderEmf(snapshot: MonitorSnapshot, options: EmfOptions): string {
  checkOptions(options);
  const values = getValues(snapshot);
  const names = Object.keys(values) as EmfMetricName[];

  const document = {
    _aws: {
      // Milliseconds since the epoch, a whole number: the specification's schema says integer.
      Timestamp: snapshot.at.getTime(),
      CloudWatchMetrics: [
        {
          Namespace: options.namespace,
          // One dimension set holding every dimension. An empty set is allowed: the metrics are
          // then published without dimensions.
          Dimensions: [Object.keys(options.dimensions)],
          Metrics: names.map((name) => ({ Name: name, Unit: emfMetrics[name] })),
        },
      ],
    },
    ...options.dimensions,
    ...values,
  };

  return JSON.stringify(document);
}

function getValues(snapshot: MonitorSnapshot): Partial<Record<EmfMetricName, number>> {
  const values: Partial<Record<EmfMetricName, number>> = {};
  const put = (name: EmfMetricName, value: number | undefined) => {
    if (value !== undefined && Number.isFinite(value)) {
      values[name] = value;
    }
  };

  put('RootVolumeUtilization', bytePercent(snapshot.root));
  put('RootInodeUtilization', inodePercent(snapshot.root));
  put('RootAvailableBytes', snapshot.root.availableBytes);

  // statfs on an empty mount point measures the root disk: without the volume there is no value.
  const volume = snapshot.volumeMounted ? snapshot.volume : undefined;
  if (volume !== undefined) {
    put('ContainerdVolumeUtilization', bytePercent(volume));
    put('ContainerdInodeUtilization', inodePercent(volume));
    put('ContainerdAvailableBytes', volume.availableBytes);
    put('ContainerdVolumeReadOnly', snapshot.volumeReadOnly ? 1 : 0);
  }

  put('ContainerdVolumeMounted', snapshot.volumeMounted ? 1 : 0);

  const pruned = getPruneOfThisTick(snapshot);
  put('ImagesPruned', pruned?.imagesRemoved ?? 0);
  put('BytesFreed', pruned?.bytesFreed ?? 0);
  put('TickSucceeded', snapshot.tickSucceeded ? 1 : 0);
  return values;
}

/**
 * The snapshot keeps totals and the last prune. A prune belongs to this tick when it ended at or
 * after the tick's `at`, the moment the tick started; an older one was counted by an earlier line.
 */
export function getPruneOfThisTick(
  snapshot: MonitorSnapshot,
): { imagesRemoved: number; bytesFreed: number } | undefined {
  const last = snapshot.prune.last;
  return last !== undefined && last.at.getTime() >= snapshot.at.getTime() ? last : undefined;
}

function bytePercent(usage: FilesystemUsage): number | undefined {
  return percent(usage.usedBytes, usage.totalBytes);
}

function inodePercent(usage: FilesystemUsage): number | undefined {
  return percent(usage.totalInodes - usage.freeInodes, usage.totalInodes);
}

function percent(part: number, whole: number): number | undefined {
  // A filesystem without an inode count (btrfs) has no inode utilization, not 0 %.
  return whole > 0 ? Math.round((part / whole) * 10000) / 100 : undefined;
}

/**
 * The config schema checks each value; these are the rules that span the whole line, repeated
 * here so that a line CloudWatch would drop is never written.
 */
function checkOptions(options: EmfOptions): void {
  const { namespace, dimensions } = options;
  const fail = (message: string) => {
    throw new ConfigError(`monitor.metrics: ${message}`);
  };

  if (namespace.length < 1 || namespace.length > emfLimits.namespaceLength) {
    fail(`namespace must have 1 to ${emfLimits.namespaceLength} characters`);
  }

  if (namespace.startsWith(':') || namespace.startsWith('AWS/')) {
    fail(`namespace ${JSON.stringify(namespace)} may not start with ":" or "AWS/"`);
  }

  const entries = Object.entries(dimensions);
  if (entries.length > emfLimits.dimensionsPerSet) {
    fail(`at most ${emfLimits.dimensionsPerSet} dimensions, not ${entries.length}`);
  }

  for (const [name, value] of entries) {
    if (name.length < 1 || name.length > emfLimits.dimensionNameLength) {
      fail(`dimension names must have 1 to ${emfLimits.dimensionNameLength} characters`);
    }

    // Dimension values and metric values share the top level of the line.
    if (name === '_aws' || Object.hasOwn(emfMetrics, name)) {
      fail(`dimension ${JSON.stringify(name)} has the name of a member ctrvol writes`);
    }

    if (typeof value !== 'string' || value.length < 1) {
      fail(`dimension ${JSON.stringify(name)} needs a value of 1 to 1024 characters`);
    }

    if (value.length > emfLimits.dimensionValueLength) {
      fail(`dimension ${JSON.stringify(name)} has more than 1024 characters`);
    }
  }
}

/**
 * Appends one line. O_APPEND makes each write land whole at the end of the file even if the
 * CloudWatch agent or logrotate touches it meanwhile; the line and its newline go in one write.
 * The file is not synced: a line lost to a power cut is one sample, and the next tick writes
 * another.
 */
export async function appendEmf(file: string, line: string): Promise<void> {
  if (line.includes('\n')) {
    throw new Error('an EMF line cannot hold a line feed');
  }

  let handle: FileHandle | undefined;
  try {
    handle = await openForAppend(file);
    await handle.write(`${line}\n`);
  } catch (error) {
    throw new StepError(`cannot append to the EMF file ${file}: ${reason(error)}`, {
      cause: error,
      step: 'metrics',
      hint: `check that ${path.dirname(file)} exists and that ctrvol-monitor.service may write it`,
    });
  } finally {
    await handle?.close();
  }
}

async function openForAppend(file: string): Promise<FileHandle> {
  const append = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW;
  let created: FileHandle;
  try {
    created = await open(file, append | constants.O_CREAT | constants.O_EXCL, 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      return open(file, append);
    }

    throw error;
  }

  try {
    // Created now, under the unit's UMask=0077: the CloudWatch agent may run as its own user
    // (cwagent). An existing file keeps whatever mode its owner gave it.
    await created.chmod(0o644);
  } catch (error) {
    await created.close();
    throw error;
  }

  return created;
}
