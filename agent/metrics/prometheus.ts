import { constants } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { StepError } from '../errors.js';
import type { FilesystemUsage } from '../host/usage.js';
import type { MonitorSnapshot } from '../monitor/snapshot.js';

/**
 * The monitor's view in the Prometheus text exposition format (version 0.0.4), for node_exporter's
 * textfile collector. The collector adds the file's samples to its own scrape, so the samples
 * carry no timestamps (node_exporter rejects them) and every name is prefixed `ctrvol_`.
 *
 * A value that is not known is left out rather than written as 0: a volume that is not mounted
 * has no filesystem samples (statfs on its mount point would measure the root disk), and a
 * setup or prune that never happened has no timestamp. Each family keeps its HELP and TYPE lines
 * even when it has no sample, so the set of families is the same on every node.
 */

type MetricType = 'gauge' | 'counter';

interface Sample {
  labels?: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

export function renderPrometheus(snapshot: MonitorSnapshot): string {
  const families = buildFamilies(snapshot);
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${family.name} ${family.type}`);
    for (const sample of family.samples) {
      lines.push(`${family.name}${renderLabels(sample.labels)} ${formatValue(sample.value)}`);
    }
  }

  // The format requires the last line to end with a line feed.
  return `${lines.join('\n')}\n`;
}

function buildFamilies(snapshot: MonitorSnapshot): Family[] {
  const filesystems: { labels: Record<string, string>; usage: FilesystemUsage }[] = [
    { labels: { filesystem: 'root', mountpoint: '/' }, usage: snapshot.root },
  ];
  if (snapshot.volumeMounted && snapshot.volume !== undefined) {
    filesystems.push({
      labels: { filesystem: 'containerd', mountpoint: snapshot.volumeMountPoint },
      usage: snapshot.volume,
    });
  }

  const perFilesystem = (pick: (usage: FilesystemUsage) => number | undefined): Sample[] =>
    filesystems.flatMap(({ labels, usage }) => {
      const value = pick(usage);
      return value === undefined ? [] : [{ labels, value }];
    });

  const volumeLabels = { mountpoint: snapshot.volumeMountPoint };
  const { prune, setup } = snapshot;
  const last = prune.last;
  const optional = (value: number | undefined): Sample[] =>
    value === undefined ? [] : [{ value }];

  const families: Family[] = [
    {
      name: 'ctrvol_filesystem_size_bytes',
      type: 'gauge',
      help: 'Size of the filesystem, from statfs.',
      samples: perFilesystem((usage) => usage.totalBytes),
    },
    {
      name: 'ctrvol_filesystem_avail_bytes',
      type: 'gauge',
      help: 'Bytes an unprivileged writer can still use (statfs f_bavail).',
      samples: perFilesystem((usage) => usage.availableBytes),
    },
    {
      name: 'ctrvol_filesystem_used_bytes',
      type: 'gauge',
      help: 'Size minus available bytes, counting reserved blocks as used, as the kubelet does.',
      samples: perFilesystem((usage) => usage.usedBytes),
    },
    {
      name: 'ctrvol_filesystem_usage_ratio',
      type: 'gauge',
      help: 'Used bytes over size, from 0 to 1.',
      samples: perFilesystem((usage) => ratio(usage.usedBytes, usage.totalBytes)),
    },
    {
      name: 'ctrvol_filesystem_inodes',
      type: 'gauge',
      help: 'Inodes on the filesystem.',
      samples: perFilesystem((usage) => usage.totalInodes),
    },
    {
      name: 'ctrvol_filesystem_inodes_free',
      type: 'gauge',
      help: 'Free inodes on the filesystem.',
      samples: perFilesystem((usage) => usage.freeInodes),
    },
    {
      name: 'ctrvol_filesystem_inode_usage_ratio',
      type: 'gauge',
      help: 'Used inodes over inodes, from 0 to 1; absent for filesystems without an inode count.',
      samples: perFilesystem((usage) =>
        ratio(usage.totalInodes - usage.freeInodes, usage.totalInodes),
      ),
    },
    {
      name: 'ctrvol_volume_mounted',
      type: 'gauge',
      help: "1 when containerd's volume is mounted where the config says, else 0.",
      samples: [{ labels: volumeLabels, value: flag(snapshot.volumeMounted) }],
    },
    {
      name: 'ctrvol_volume_read_only',
      type: 'gauge',
      help: "1 when containerd's volume is mounted read-only, as the kernel does after I/O errors.",
      samples: [
        { labels: volumeLabels, value: flag(snapshot.volumeMounted && snapshot.volumeReadOnly) },
      ],
    },
    {
      name: 'ctrvol_prune_runs_total',
      type: 'counter',
      help: 'Prunes the monitor has run on this node.',
      samples: [{ value: prune.runsTotal }],
    },
    {
      name: 'ctrvol_prune_images_removed_total',
      type: 'counter',
      help: 'Images the monitor has removed on this node.',
      samples: [{ value: prune.imagesRemovedTotal }],
    },
    {
      name: 'ctrvol_prune_freed_bytes_total',
      type: 'counter',
      help: 'Bytes freed on the volume by the monitor on this node.',
      samples: [{ value: prune.bytesFreedTotal }],
    },
    {
      name: 'ctrvol_prune_last_timestamp_seconds',
      type: 'gauge',
      help: 'When the last prune ended, in seconds since the epoch.',
      samples: optional(last === undefined ? undefined : seconds(last.at)),
    },
    {
      name: 'ctrvol_prune_last_success',
      type: 'gauge',
      help: '1 when the last prune brought the volume down to prune.lowPercent, else 0.',
      samples: optional(last === undefined ? undefined : flag(last.reachedTarget)),
    },
    {
      name: 'ctrvol_prune_last_images_removed',
      type: 'gauge',
      help: 'Images removed by the last prune.',
      samples: optional(last?.imagesRemoved),
    },
    {
      name: 'ctrvol_prune_last_freed_bytes',
      type: 'gauge',
      help: 'Bytes freed by the last prune.',
      samples: optional(last?.bytesFreed),
    },
    {
      name: 'ctrvol_last_tick_timestamp_seconds',
      type: 'gauge',
      help: 'When the monitor last measured, in seconds since the epoch.',
      samples: [{ value: seconds(snapshot.at) }],
    },
    {
      name: 'ctrvol_last_tick_success',
      type: 'gauge',
      help: '1 when the last tick did everything it tried, else 0.',
      samples: [{ value: flag(snapshot.tickSucceeded) }],
    },
    {
      name: 'ctrvol_setup_success',
      type: 'gauge',
      help: '1 when the last ctrvol setup succeeded, 0 when it failed; absent when unknown.',
      samples: optional(setup.outcome === 'unknown' ? undefined : flag(setup.outcome === 'ok')),
    },
    {
      name: 'ctrvol_setup_timestamp_seconds',
      type: 'gauge',
      help: 'When the last ctrvol setup ended, in seconds since the epoch.',
      samples: optional(setup.at === undefined ? undefined : seconds(setup.at)),
    },
  ];
  return families;
}

function ratio(part: number, whole: number): number | undefined {
  // btrfs and some network filesystems report no inodes at all: that is unknown, not 0 % used.
  return whole > 0 ? part / whole : undefined;
}

function flag(value: boolean): number {
  return value ? 1 : 0;
}

function seconds(date: Date): number {
  return date.getTime() / 1000;
}

function renderLabels(labels: Record<string, string> | undefined): string {
  if (labels === undefined) {
    return '';
  }

  const pairs = Object.entries(labels).map(
    ([name, value]) => `${name}="${escapeLabelValue(value)}"`,
  );
  return `{${pairs.join(',')}}`;
}

/** Label values escape backslash, double quote and line feed, and nothing else. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (char) => (char === '\n' ? '\\n' : `\\${char}`));
}

/** HELP text escapes backslash and line feed only. */
function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (char) => (char === '\n' ? '\\n' : '\\\\'));
}

/** Values are Go float literals; JavaScript's own number text is one, apart from the infinities. */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/**
 * Replaces the textfile atomically: node_exporter reads `*.prom` files at any moment, and must
 * see either the old text or the new one, never a half-written file. The temporary file is
 * `NAME.prom.tmp` in the same folder (a rename is atomic only within one filesystem), which the
 * collector ignores because it does not end in `.prom`.
 */
export async function writeTextfile(file: string, text: string): Promise<void> {
  const temporary = `${file}.tmp`;
  try {
    // O_NOFOLLOW: the folder may be shared with other exporters, and a root process must not
    // be led through a planted symlink into truncating some other file.
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
    const handle = await open(temporary, flags, 0o644);
    try {
      // The mode given to open() is cut by the umask, and ctrvol-monitor.service runs with
      // UMask=0077; node_exporter runs as its own user and must be able to read the file.
      await handle.chmod(0o644);
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }

    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw new StepError(`cannot write the metrics textfile ${file}: ${reason(error)}`, {
      cause: error,
      step: 'metrics',
      hint: `check that ${path.dirname(file)} exists and that ctrvol-monitor.service may write it`,
    });
  }

  // The rename is in place; syncing the folder makes it survive a power loss too. A metrics file
  // is rewritten every tick, so a failure here is not worth failing the tick for.
  await syncDir(path.dirname(file)).catch(() => undefined);
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Node's own message, which names the errno and the path it failed on. */
export function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
