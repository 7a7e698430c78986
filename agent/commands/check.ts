import type { CommonOptions } from '../cli/args.js';
import { loadConfig } from '../config/load.js';
import { findSandboxImage } from '../containerd/sandbox-image.js';
import { getErrorLine, isCtrvolError } from '../errors.js';
import { getBindState } from '../host/bind-mounts.js';
import { realHost } from '../host/host.js';
import { getMountAt, readMountInfo } from '../host/mountinfo.js';
import type { Logger } from '../log/logger.js';
import { inspect } from '../monitor/inspect.js';
import { getPaths } from '../state/paths.js';
import { connectCri } from './cri.js';

/** node-problem-detector's table, not ctrvol's: 0 healthy, 1 a problem, 2 cannot tell. */
export const CheckStatus = { ok: 0, problem: 1, unknown: 2 } as const;

export interface CheckResult {
  status: (typeof CheckStatus)[keyof typeof CheckStatus];
  /** NPD shows the first line, about 80 characters. */
  message: string;
}

/**
 * `ctrvol check`, a node-problem-detector custom plugin: is the volume mounted, writable and
 * below its threshold, and does containerd have its sandbox image? Its own config and
 * environment errors mean it cannot tell (2), not that the node has a problem.
 */
export async function check(common: CommonOptions, logger: Logger): Promise<CheckResult> {
  try {
    return await checkNode(common, logger);
  } catch (error) {
    if (!isCtrvolError(error)) {
      throw error;
    }

    return { status: CheckStatus.unknown, message: `cannot tell: ${getErrorLine(error)}` };
  }
}

async function checkNode(common: CommonOptions, logger: Logger): Promise<CheckResult> {
  const config = await loadConfig(common.config);
  const paths = getPaths(common.root);
  const warn = config.monitor.warnPercent;
  const seen = await inspect(realHost, paths.stateFile, config.volume.mountPoint, warn);
  const problems = [...seen.problems];
  let unknown: string | undefined;

  if (seen.mounted) {
    problems.push(...(await findUnboundDirectories(config.volume)));
    try {
      const client = await connectCri(config, logger);
      try {
        const sandbox = await findSandboxImage({ client, configPath: config.containerd.config });
        if ((await client.imageStatus(sandbox.name)).image === undefined) {
          problems.push(`sandbox image ${sandbox.name} is missing`);
        }
      } finally {
        client.close();
      }
    } catch (error) {
      unknown = `containerd: ${getErrorLine(error)}`;
    }
  }

  if (problems.length > 0) {
    return { status: CheckStatus.problem, message: problems.join('; ') };
  }

  if (unknown !== undefined) {
    return { status: CheckStatus.unknown, message: `cannot tell: ${unknown}` };
  }

  const volume = seen.volume === undefined ? '' : `, ${seen.volume.percent}% used`;
  return { status: CheckStatus.ok, message: `ok: ${seen.mountPoint} mounted${volume}` };
}

/**
 * A volume.bindMounts directory not bound from the volume: the kubelet (or whoever writes there)
 * is filling the root disk instead, unseen by the volume's usage figures.
 */
async function findUnboundDirectories(volume: {
  mountPoint: string;
  bindMounts: readonly string[];
}): Promise<string[]> {
  if (volume.bindMounts.length === 0) {
    return [];
  }

  const mounts = readMountInfo(realHost);
  const majorMinor = getMountAt(mounts, volume.mountPoint)?.majorMinor ?? '';
  return volume.bindMounts
    .filter((directory) => getBindState(mounts, directory, majorMinor).kind !== 'bound')
    .map((directory) => `${directory} is not bound from the volume`);
}

/**
 * NPD takes the first line (about 80 characters) as the condition's message; a longer message
 * is cut there and given whole on the next line.
 */
export function formatCheck(result: CheckResult): string {
  const { message } = result;
  return message.length <= 78 ? `${message}\n` : `${message.slice(0, 77)}…\n${message}\n`;
}
