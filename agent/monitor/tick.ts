import path from 'node:path';
import { pruneToTarget } from '../commands/prune.js';
import { connectCri } from '../commands/cri.js';
import type { Config } from '../config/schema.js';
import type { CriClient } from '../cri/client.js';
import { getErrorLine } from '../errors.js';
import type { Runner } from '../exec.js';
import { getNameByNumber, readBlockDevice } from '../host/block.js';
import { describeGrowth, growIfDeviceGrew } from '../host/grow.js';
import type { Host } from '../host/host.js';
import { getImagesInUse, type NodeImage } from '../images/plan.js';
import { readUsage, recordSighting, writeUsage } from '../images/usage.js';
import type { Logger } from '../log/logger.js';
import { appendEmf, renderEmf } from '../metrics/emf.js';
import { renderPrometheus, writeTextfile } from '../metrics/prometheus.js';
import type { Paths } from '../state/paths.js';
import { getPercent, inspect, type Inspection } from './inspect.js';
import type { MonitorSnapshot } from './snapshot.js';
import { readLastSetup, readMonitorState, writeMonitorState, type MonitorState } from './state.js';

export interface TickContext {
  config: Config;
  paths: Paths;
  host: Host;
  run: Runner;
  logger: Logger;
  /** A CRI channel kept from tick to tick, so that each tick does not build one anew. */
  cri?: CriClient | undefined;
}

/** The kept CRI client, or a new one after a failure or on the first tick. */
async function getClient(context: TickContext): Promise<CriClient> {
  context.cri ??= await connectCri(context.config, context.logger);
  return context.cri;
}

function dropClient(context: TickContext): void {
  context.cri?.close();
  context.cri = undefined;
}

/** Closes the kept CRI channel when the monitor stops. */
export function closeTickContext(context: TickContext): void {
  dropClient(context);
}

/**
 * One look at the node: measure, warn on crossings, note problems, record which images are in
 * use, prune past the high mark, grow a grown volume, publish metrics. Every part that fails is
 * logged and the rest still runs: a monitor that stops at the first error reports nothing.
 */
export async function runTick(context: TickContext): Promise<MonitorSnapshot> {
  const { config, paths, logger } = context;
  const at = new Date();
  const state = await readMonitorState(paths.stateDir);
  const warn = config.monitor.warnPercent;
  let succeeded = true;
  const fail = (what: string) => (error: unknown) => {
    logger.warn({ err: getErrorLine(error) }, what);
    succeeded = false;
  };

  const seen = await inspect(context.host, paths.stateFile, config.volume.mountPoint, warn);
  noteCrossing(state, 'root', getPercent(seen.root), warn.root, logger);
  if (seen.volume !== undefined) {
    noteCrossing(state, 'volume', getPercent(seen.volume), warn.volume, logger);
  }

  noteProblems(state, seen, logger);

  if (seen.mounted) {
    const client = await getClient(context).catch((error: unknown) => {
      fail('containerd is not answering; image records and prune skipped this tick')(error);
      return undefined;
    });
    if (client !== undefined) {
      const before = succeeded;
      await recordImageUse(client, paths, logger).catch(
        fail('could not record which images are in use'),
      );
      await pruneIfFull(context, client, seen, state).catch(fail('prune failed'));
      if (succeeded !== before) {
        // containerd may have restarted under the channel: a fresh one next time.
        dropClient(context);
      }
    }

    if (!seen.readOnly) {
      await growIfNeeded(context, seen, state).catch(fail('could not grow the filesystem'));
    }
  }

  const lastSetup = await readLastSetup(paths.stateDir);
  const snapshot: MonitorSnapshot = {
    at,
    root: seen.root,
    volume: seen.volume,
    volumeMountPoint: seen.mountPoint,
    volumeMounted: seen.mounted,
    volumeReadOnly: seen.readOnly,
    prune: {
      ...state.prune,
      last:
        state.prune.last === undefined
          ? undefined
          : { ...state.prune.last, at: new Date(state.prune.last.at) },
    },
    setup: {
      outcome: lastSetup?.outcome ?? 'unknown',
      at: lastSetup === undefined ? undefined : new Date(lastSetup.at),
    },
    tickSucceeded: succeeded,
  };
  await publish(context, snapshot).catch(fail('could not write metrics'));
  snapshot.tickSucceeded = succeeded;

  state.lastTick = { at: at.toISOString(), succeeded, problems: seen.problems };
  await writeMonitorState(paths.stateDir, state).catch(fail('could not save the monitor state'));
  return snapshot;
}

/** A warning once when use crosses its threshold, a notice once when it falls back below. */
function noteCrossing(
  state: MonitorState,
  which: 'root' | 'volume',
  percent: number,
  threshold: number,
  logger: Logger,
): void {
  const over = percent >= threshold;
  if (over && !state.crossed[which]) {
    logger.warn({ percent, threshold }, `the ${which} filesystem is above ${threshold}% full`);
  } else if (!over && state.crossed[which]) {
    logger.notice({ percent, threshold }, `the ${which} filesystem is back below ${threshold}%`);
  }

  state.crossed[which] = over;
}

/** An unmounted or read-only volume is an error while it lasts, logged when it starts and ends. */
function noteProblems(state: MonitorState, seen: Inspection, logger: Logger): void {
  const now = { unmounted: !seen.mounted, readOnly: seen.readOnly };
  const phrases = {
    unmounted: `the volume is not mounted at ${seen.mountPoint}`,
    readOnly: `the volume at ${seen.mountPoint} has gone read-only (I/O errors?)`,
  };
  for (const key of ['unmounted', 'readOnly'] as const) {
    if (now[key] && !state.problems[key]) {
      logger.error(phrases[key]);
    } else if (!now[key] && state.problems[key]) {
      logger.notice(`resolved: ${phrases[key]}`);
    }
  }

  state.problems = now;
}

/** Prune's least-recently-used order rests on when ctrvol last saw each image in use. */
async function recordImageUse(client: CriClient, paths: Paths, logger: Logger): Promise<void> {
  const file = path.join(paths.stateDir, 'images.json');
  const [images, containers, usage] = await Promise.all([
    client.listImages(),
    client.listContainers(),
    readUsage(file, (why) =>
      logger.warn({ why }, 'the image usage record is damaged; starting a new one'),
    ),
  ]);
  const nodeImages: NodeImage[] = images.map((image) => ({
    id: image.id,
    repoTags: image.repoTags,
    repoDigests: image.repoDigests,
    sizeBytes: image.size,
    pinned: image.pinned,
  }));
  const inUse = getImagesInUse(nodeImages, containers);
  const ids = nodeImages.map((image) => image.id);
  await writeUsage(file, recordSighting(usage, ids, inUse, Date.now()));
}

async function pruneIfFull(
  context: TickContext,
  client: CriClient,
  seen: Inspection,
  state: MonitorState,
): Promise<void> {
  const { config, paths, logger } = context;
  const { enabled, highPercent, lowPercent } = config.prune;
  if (!enabled || seen.volume === undefined || seen.volume.percent <= highPercent) {
    return;
  }

  logger.info({ percent: seen.volume.percent, highPercent, lowPercent }, 'pruning images');
  const usageFile = path.join(paths.stateDir, 'images.json');
  const result = await pruneToTarget(config, client, usageFile, lowPercent, logger);
  const freed = Math.max(0, result.freedBytes);
  state.prune.runsTotal += 1;
  state.prune.imagesRemovedTotal += result.removed.length;
  state.prune.bytesFreedTotal += freed;
  state.prune.last = {
    at: new Date().toISOString(),
    imagesRemoved: result.removed.length,
    bytesFreed: freed,
    reachedTarget: result.reached,
  };
  const summary = {
    removed: result.removed.length,
    freedBytes: freed,
    percent: result.after.percent,
  };
  if (result.reached) {
    logger.info(summary, `pruned down to ${result.after.percent}%`);
  } else {
    const kept = result.protected.length;
    logger.warn(summary, `could not prune below ${lowPercent}%: ${kept} image(s) are protected`);
  }
}

/**
 * statfs leaves out filesystem metadata, so it only tells when a growth is worth a precise look
 * (xfs_info, dumpe2fs): a device more than an eighth larger than the filesystem. Smaller growths
 * are left to ctrvol setup at the next boot, which always looks precisely.
 */
async function growIfNeeded(context: TickContext, seen: Inspection, state: MonitorState) {
  if (seen.mount === undefined || seen.volume === undefined) {
    return;
  }

  const name = getNameByNumber(context.host, seen.mount.majorMinor);
  if (name === undefined) {
    return;
  }

  const device = readBlockDevice(context.host, name);
  if (device.sizeBytes <= seen.volume.totalBytes * 1.125 + 64 * 1024 * 1024) {
    return;
  }

  if (state.growRefusedAt === device.sizeBytes) {
    return;
  }

  const result = await growIfDeviceGrew(context.run, {
    fsType: seen.mount.fsType,
    device: device.path,
    mountPoint: seen.mountPoint,
    deviceBytes: device.sizeBytes,
  }).catch((error: unknown) => {
    // Said once per device size, not every five minutes.
    state.growRefusedAt = device.sizeBytes;
    throw error;
  });
  if (result.grown) {
    context.logger.info(result, describeGrowth(result));
  }
}

/** Each output on its own: a broken textfile folder must not silence the EMF lines. */
async function publish(context: TickContext, snapshot: MonitorSnapshot): Promise<void> {
  const { textfile, emfFile, namespace, dimensions } = context.config.monitor.metrics;
  const results = await Promise.allSettled([
    textfile === undefined ? undefined : writeTextfile(textfile, renderPrometheus(snapshot)),
    emfFile === undefined
      ? undefined
      : appendEmf(emfFile, renderEmf(snapshot, { namespace, dimensions })),
  ]);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed !== undefined) {
    throw failed.reason;
  }
}
