import type { CommonOptions } from '../cli/args.js';
import { getBlockDevice } from '../host/block.js';
import { realHost } from '../host/host.js';
import { getBindState } from '../host/bind-mounts.js';
import { getMountAt, readMountInfo } from '../host/mountinfo.js';
import { measureFilesystem, type FilesystemUsage } from '../host/usage.js';
import { readMonitorState, type MonitorState } from '../monitor/state.js';
import { getBindFolder, getPaths } from '../state/paths.js';
import { readState, type SetupState } from '../state/state.js';
import { formatBytes } from '../text.js';

export interface StatusReport {
  setUp: boolean;
  state: SetupState | undefined;
  mounted: boolean;
  /** What is mounted at the mount point now, when it is not the recorded volume. */
  mountedInstead: string | undefined;
  usage: FilesystemUsage | undefined;
  /** What the monitor last saw and did, when it has run. */
  monitor: Pick<MonitorState, 'lastTick' | 'prune'> | undefined;
  /** Each directory setup binds from the volume, and whether it is bound now. */
  bindMounts: BindMountStatus[];
}

export interface BindMountStatus {
  directory: string;
  /** The folder it is bound from, relative to the top of the volume. */
  folder: string;
  bound: boolean;
  /** What is mounted at the directory instead, when something else is. */
  mountedInstead: string | undefined;
}

/** Reads what setup and the monitor recorded and checks it against the live machine. */
export async function getStatus(common: CommonOptions): Promise<StatusReport> {
  const paths = getPaths(common.root);
  const state = await readState(paths.stateFile);
  const monitorState = await readMonitorState(paths.stateDir);
  const monitor =
    monitorState.lastTick === undefined
      ? undefined
      : { lastTick: monitorState.lastTick, prune: monitorState.prune };
  if (state === undefined) {
    return {
      setUp: false,
      state,
      mounted: false,
      mountedInstead: undefined,
      usage: undefined,
      monitor,
      bindMounts: [],
    };
  }

  const mounts = readMountInfo(realHost);
  const mount = getMountAt(mounts, state.mountPoint);
  const device = await getBlockDevice(realHost, state.device).catch(() => undefined);
  const mounted = mount !== undefined && mount.majorMinor === device?.majorMinor;
  const usage = mounted ? await measureFilesystem(state.mountPoint) : undefined;
  const bindMounts = (state.bindMounts ?? []).map((directory): BindMountStatus => {
    const bind = getBindState(mounts, directory, device?.majorMinor ?? '');
    return {
      directory,
      folder: getBindFolder(directory),
      bound: bind.kind === 'bound',
      mountedInstead: bind.kind === 'occupied' ? bind.mount.source : undefined,
    };
  });

  return {
    setUp: true,
    state,
    mounted,
    mountedInstead: mount !== undefined && !mounted ? mount.source : undefined,
    usage,
    monitor,
    bindMounts,
  };
}

export function formatStatus(report: StatusReport): string {
  const { state } = report;
  if (state === undefined) {
    return 'ctrvol: not set up on this machine (no state recorded); run ctrvol setup\n';
  }

  const headline = report.mounted
    ? `ctrvol: ${state.mountPoint} is on its own volume`
    : `ctrvol: volume NOT mounted at ${state.mountPoint}`;
  const instead = report.mountedInstead === undefined ? '' : ` (${report.mountedInstead} is)`;
  const rows: [string, string][] = [
    ['device', `${state.device} (at setup)`],
    ...(state.array === undefined
      ? []
      : [
          [
            'array',
            `${state.array.level} of ${state.array.members.join(', ')}, md UUID ${state.array.uuid}`,
          ] as [string, string],
        ]),
    ['uuid', state.uuid],
    ['filesystem', `${state.filesystem}, label ${state.label}`],
    [
      'mount',
      report.mounted
        ? `${state.mountPoint}, mounted`
        : `${state.mountPoint}, not mounted${instead}`,
    ],
  ];
  if (report.usage !== undefined) {
    const { usedBytes, totalBytes, percent, inodePercent } = report.usage;
    rows.push([
      'usage',
      `${formatBytes(usedBytes)} of ${formatBytes(totalBytes)} (${percent}%; inodes ${inodePercent}%)`,
    ]);
  }

  for (const bind of report.bindMounts) {
    const instead = bind.mountedInstead === undefined ? '' : ` (${bind.mountedInstead} is)`;
    rows.push([
      'bind',
      bind.bound
        ? `${bind.directory} from ${bind.folder}, bound`
        : `${bind.directory} from ${bind.folder}, NOT bound${instead}`,
    ]);
  }

  rows.push(['set up', state.setupAt]);
  rows.push([
    'hidden',
    state.hiddenBytes === 0
      ? 'nothing left under the mount point on the root disk'
      : `${formatBytes(state.hiddenBytes)} of the old store lie under the mount point on the root disk`,
  ]);
  rows.push(...getMonitorRows(report.monitor));

  return `${headline}\n${rows.map(([key, value]) => `  ${key.padEnd(11)} ${value}`).join('\n')}\n`;
}

function getMonitorRows(monitor: StatusReport['monitor']): [string, string][] {
  if (monitor?.lastTick === undefined) {
    return [['monitor', 'no tick recorded (is ctrvol-monitor.service running?)']];
  }

  const { lastTick, prune } = monitor;
  const outcome = lastTick.succeeded ? 'ok' : 'with failures (see its journal)';
  const problems = lastTick.problems.length === 0 ? '' : `; ${lastTick.problems.join('; ')}`;
  const rows: [string, string][] = [['last tick', `${lastTick.at}, ${outcome}${problems}`]];
  if (prune.last !== undefined) {
    const { at, imagesRemoved, bytesFreed, reachedTarget } = prune.last;
    const reached = reachedTarget ? '' : ', target not reached';
    rows.push([
      'last prune',
      `${at}: ${imagesRemoved} image(s), ${formatBytes(bytesFreed)} freed${reached}`,
    ]);
  }

  return rows;
}
