import { statfs } from 'node:fs/promises';
import type { CommonOptions } from '../cli/args.js';
import { getBlockDevice } from '../host/block.js';
import { realHost } from '../host/host.js';
import { getMountAt, readMountInfo } from '../host/mountinfo.js';
import { getPaths } from '../state/paths.js';
import { readState, type SetupState } from '../state/state.js';
import { formatBytes } from '../text.js';

export interface StatusReport {
  setUp: boolean;
  state: SetupState | undefined;
  mounted: boolean;
  /** What is mounted at the mount point now, when it is not the recorded volume. */
  mountedInstead: string | undefined;
  usage: { totalBytes: number; usedBytes: number; percent: number } | undefined;
}

/** Reads what setup recorded and checks it against the live machine. Needs no config. */
export async function getStatus(common: CommonOptions): Promise<StatusReport> {
  const state = await readState(getPaths(common.root).stateFile);
  if (state === undefined) {
    return { setUp: false, state, mounted: false, mountedInstead: undefined, usage: undefined };
  }

  const mount = getMountAt(await readMountInfo(realHost), state.mountPoint);
  const device = await getBlockDevice(realHost, `/dev/disk/by-uuid/${state.uuid}`).catch(() =>
    getBlockDevice(realHost, state.device).catch(() => undefined),
  );
  const mounted = mount !== undefined && mount.majorMinor === device?.majorMinor;
  const usage = mounted ? await getUsage(state.mountPoint) : undefined;

  return {
    setUp: true,
    state,
    mounted,
    mountedInstead: mount !== undefined && !mounted ? mount.source : undefined,
    usage,
  };
}

async function getUsage(dir: string): Promise<StatusReport['usage']> {
  const stats = await statfs(dir);
  const totalBytes = stats.blocks * stats.bsize;
  const usedBytes = (stats.blocks - stats.bfree) * stats.bsize;
  return { totalBytes, usedBytes, percent: Math.round((usedBytes / totalBytes) * 1000) / 10 };
}

export function formatStatus(report: StatusReport): string {
  const { state } = report;
  if (state === undefined) {
    return 'ctrvol: not set up on this machine (no state recorded); run ctrvol setup\n';
  }

  const headline = report.mounted
    ? `ctrvol: ${state.mountPoint} is on its own volume`
    : `ctrvol: volume NOT mounted at ${state.mountPoint}`;
  const rows: [string, string][] = [
    ['device', `${state.device} (at setup)`],
    ['uuid', state.uuid],
    ['filesystem', `${state.filesystem}, label ${state.label}`],
    [
      'mount',
      report.mounted
        ? `${state.mountPoint}, mounted`
        : `${state.mountPoint}, not mounted${report.mountedInstead === undefined ? '' : ` (${report.mountedInstead} is)`}`,
    ],
  ];
  if (report.usage !== undefined) {
    const { usedBytes, totalBytes, percent } = report.usage;
    rows.push(['usage', `${formatBytes(usedBytes)} of ${formatBytes(totalBytes)} (${percent}%)`]);
  }

  rows.push(['set up', state.setupAt]);
  rows.push([
    'hidden',
    state.hiddenBytes === 0
      ? 'nothing left under the mount point on the root disk'
      : `${formatBytes(state.hiddenBytes)} of the old store lie under the mount point on the root disk`,
  ]);

  return `${headline}\n${rows.map(([key, value]) => `  ${key.padEnd(11)} ${value}`).join('\n')}\n`;
}
