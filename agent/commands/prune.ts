import path from 'node:path';
import type { CommonOptions } from '../cli/args.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { findSandboxImage } from '../containerd/sandbox-image.js';
import type { CriClient, CriImage } from '../cri/client.js';
import { EnvironmentError, StepError, UsageError } from '../errors.js';
import { realHost } from '../host/host.js';
import { acquireLock } from '../host/lock.js';
import { inspect } from '../monitor/inspect.js';
import { measureFilesystem, type FilesystemUsage } from '../host/usage.js';
import {
  getImagesInUse,
  planPrune,
  type NodeImage,
  type PruneCandidate,
  type PrunePlan,
} from '../images/plan.js';
import { readUsage, recordSighting, writeUsage } from '../images/usage.js';
import type { Logger } from '../log/logger.js';
import { getPaths } from '../state/paths.js';
import { formatBytes } from '../text.js';
import { connectCri } from './cri.js';

export interface PruneOptions {
  dryRun: boolean;
  targetPercent: string | undefined;
}

export interface PruneResult {
  removed: { image: string; sizeBytes: number }[];
  freedBytes: number;
  before: FilesystemUsage;
  after: FilesystemUsage;
  targetPercent: number;
  reached: boolean;
  protected: PrunePlan['protected'];
}

/** `ctrvol prune`: removes unused images, least recently used first, until the target. */
export async function prune(
  common: CommonOptions,
  options: PruneOptions,
  logger: Logger,
): Promise<string> {
  const config = await loadConfig(common.config);
  const targetPercent = getTarget(options.targetPercent, config.prune.lowPercent);
  const client = await connectCri(config, logger);
  try {
    const paths = getPaths(common.root);
    const { mountPoint } = config.volume;
    const seen = await inspect(realHost, paths.stateFile, mountPoint, config.monitor.warnPercent);
    if (!seen.mounted) {
      // statfs would measure the root disk, and prune would empty containerd's store there.
      throw new EnvironmentError(
        `the volume is not mounted at ${mountPoint}; nothing was removed`,
        {
          hint: 'run ctrvol setup first',
        },
      );
    }

    const usageFile = path.join(getPaths(common.root).stateDir, 'images.json');
    if (options.dryRun) {
      const plan = await getPlan(config, client, usageFile, false);
      return formatPlan(plan, await measureFilesystem(config.volume.mountPoint), targetPercent);
    }

    const result = await pruneToTarget(config, client, usageFile, targetPercent, logger);
    const summary = formatSummary(result);
    if (!result.reached) {
      const kept = result.protected
        .map((entry) => `${getName(entry.image)} (${entry.reasons.join(', ')})`)
        .join('; ');
      throw new StepError(
        `${summary.trimEnd()}; the target of ${targetPercent}% cannot be reached: the rest is ` +
          `protected: ${kept || 'nothing else is there'}`,
      );
    }

    return summary;
  } finally {
    client.close();
  }
}

function getTarget(flag: string | undefined, fallback: number): number {
  if (flag === undefined) {
    return fallback;
  }

  const value = /^\d+(\.\d+)?$/.test(flag) ? Number(flag) : Number.NaN;
  if (!Number.isFinite(value) || value <= 0 || value >= 100) {
    throw new UsageError(`--target-percent: got "${flag}"; allowed: a number between 0 and 100`);
  }

  return value;
}

/**
 * Everything the plan needs from CRI and containerd, as of now. The usage record is updated as
 * a side effect (first sightings, last uses), except on a dry run, which changes nothing.
 */
async function getPlan(
  config: Config,
  client: CriClient,
  usageFile: string,
  record: boolean,
  logger?: Logger,
): Promise<PrunePlan> {
  const { listPinnedImageNames } = await import('../cri/index.js');
  const [sandbox, images, containers, pinnedNames, stored] = await Promise.all([
    findSandboxImage({ client, configPath: config.containerd.config }),
    client.listImages(),
    client.listContainers(),
    listPinnedImageNames(client),
    readUsage(usageFile, (why) =>
      logger?.warn({ why }, 'the image usage record is damaged; starting a new one'),
    ),
  ]);
  const nodeImages = images.map(toNodeImage);
  const now = Date.now();
  const usage = recordSighting(
    stored,
    nodeImages.map((image) => image.id),
    getImagesInUse(nodeImages, containers),
    now,
  );
  if (record) {
    await writeUsage(usageFile, usage);
  }

  return planPrune({
    images: nodeImages,
    containers,
    pinnedNames,
    sandboxImage: sandbox.name,
    usage,
    keep: config.prune.keep,
    minAgeSeconds: config.prune.minAgeSeconds,
    now,
  });
}

function toNodeImage(image: CriImage): NodeImage {
  return {
    id: image.id,
    repoTags: image.repoTags,
    repoDigests: image.repoDigests,
    sizeBytes: image.size,
    pinned: image.pinned,
  };
}

/**
 * Removes one image at a time and measures the filesystem after each, because CRI's sizes are
 * compressed content and say nothing of the unpacked snapshots that removal frees. Containers
 * are listed again before every removal: the kubelet may have started one meanwhile.
 */
export async function pruneToTarget(
  config: Config,
  client: CriClient,
  usageFile: string,
  targetPercent: number,
  logger: Logger,
): Promise<PruneResult> {
  const mountPoint = config.volume.mountPoint;
  // One prune at a time, the monitor's and a manual one alike: two would each remove what the
  // other's measurement already counted as freed.
  const lock = await acquireLock(path.join(path.dirname(usageFile), 'prune.lock'), { waitMs: 0 });
  try {
    return await pruneLocked(config, client, usageFile, targetPercent, logger, mountPoint);
  } finally {
    await lock.release();
  }
}

async function pruneLocked(
  config: Config,
  client: CriClient,
  usageFile: string,
  targetPercent: number,
  logger: Logger,
  mountPoint: string,
): Promise<PruneResult> {
  const before = await measureFilesystem(mountPoint);
  const plan = await getPlan(config, client, usageFile, true, logger);
  const removed: PruneResult['removed'] = [];
  let now = before;

  for (const candidate of plan.candidates) {
    if (now.percent <= targetPercent) {
      break;
    }

    if (await isNowInUse(client, candidate)) {
      logger.info({ image: getName(candidate.image) }, 'skipped: a container started using it');
      plan.protected.push({ image: candidate.image, reasons: ['in use by a container'] });
      continue;
    }

    await client.removeImage(candidate.image.id);
    now = await measureFilesystem(mountPoint);
    removed.push({ image: getName(candidate.image), sizeBytes: candidate.image.sizeBytes });
    logger.info(
      { image: getName(candidate.image), usedPercent: now.percent },
      `removed ${getName(candidate.image)}`,
    );
  }

  return {
    removed,
    freedBytes: before.usedBytes - now.usedBytes,
    before,
    after: now,
    targetPercent,
    reached: now.percent <= targetPercent,
    protected: plan.protected,
  };
}

async function isNowInUse(client: CriClient, candidate: PruneCandidate): Promise<boolean> {
  const containers = await client.listContainers();
  return getImagesInUse([candidate.image], containers).size > 0;
}

function getName(image: NodeImage): string {
  return image.repoTags[0] ?? image.repoDigests[0] ?? image.id;
}

function formatSummary(result: PruneResult): string {
  const { before, after, removed, freedBytes, targetPercent } = result;
  return (
    `prune: removed ${removed.length} image(s), freed ${formatBytes(freedBytes)}; ` +
    `usage ${before.percent}% -> ${after.percent}% (target ${targetPercent}%)\n`
  );
}

function formatPlan(plan: PrunePlan, usage: FilesystemUsage, targetPercent: number): string {
  const lines = [
    `Dry run: usage ${usage.percent}% of ${formatBytes(usage.totalBytes)}, target ` +
      `${targetPercent}%${usage.percent <= targetPercent ? ' (already met: nothing would go)' : ''}`,
    'Would remove, in this order, until the target is met:',
    ...plan.candidates.map(
      (candidate, index) =>
        `  ${index + 1}. ${getName(candidate.image)}  ${formatBytes(candidate.image.sizeBytes)}  ` +
        `last used ${new Date(candidate.lastUsed).toISOString()}`,
    ),
    'Kept:',
    ...plan.protected.map((entry) => `  - ${getName(entry.image)}  ${entry.reasons.join(', ')}`),
  ];
  if (plan.candidates.length === 0) {
    lines.splice(2, 0, '  (nothing)');
  }

  return `${lines.join('\n')}\n`;
}
