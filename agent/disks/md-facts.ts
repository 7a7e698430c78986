import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { EnvironmentError } from '../errors.js';
import type { Runner } from '../exec.js';
import type { Host } from '../host/host.js';
import type { Disk } from './inventory.js';
import {
  buildDetailArgs,
  buildExamineArgs,
  parseMdstat,
  type ArrayFacts,
  type MemberFacts,
} from './md.js';
import type { RaidLevel } from './selectors.js';

/** Where distributions keep mdadm's config: Amazon Linux and Fedora, then Debian and Ubuntu. */
export const mdadmConfigFiles = ['/etc/mdadm.conf', '/etc/mdadm/mdadm.conf'];

export interface GatherOptions {
  run: Runner;
  host: Host;
  level: RaidLevel;
  members: readonly Disk[];
  /** Whether a member is blank, from blkid and wipefs (isBlank), and what it carries if not. */
  describeMember: (disk: Disk) => Promise<{ blank: boolean; signatures?: string }>;
  configFiles?: readonly string[];
  recordedUuid?: string;
}

/**
 * Reads what planArray needs: /proc/mdstat, --detail of every array in it, --examine of every
 * member, and the mdadm config files. Reads only; nothing here changes an array.
 */
export async function gatherArrayFacts(options: GatherOptions): Promise<ArrayFacts> {
  const { run, host } = options;
  // No /proc/mdstat means the md driver is not loaded, so no array is assembled; mdadm --create
  // loads it.
  const mdstat = await readOptional(path.join(host.proc, 'mdstat'));
  const details: Record<string, string> = {};
  for (const array of parseMdstat(mdstat ?? '').arrays) {
    const device = `/dev/${array.name}`;
    const result = await run.run('mdadm', buildDetailArgs(device), {
      okExitCodes: [1],
      packageHint: 'mdadm',
    });
    details[device] = result.stdout;
  }

  const members: MemberFacts[] = [];
  for (const disk of options.members) {
    const result = await run.run('mdadm', buildExamineArgs(disk.path), {
      okExitCodes: [1],
      packageHint: 'mdadm',
    });
    if (result.exitCode === 1 && !/no md superblock detected/i.test(result.stderr)) {
      throw new EnvironmentError(
        `mdadm --examine ${disk.path} failed: ${result.stderr.trim().split('\n').join(' / ')}`,
      );
    }

    const { blank, signatures } = await options.describeMember(disk);
    members.push({
      path: disk.path,
      examine: result.exitCode === 0 ? result.stdout : undefined,
      blank,
      ...(signatures === undefined ? {} : { signatures }),
    });
  }

  const configs: Record<string, string | undefined> = {};
  for (const file of options.configFiles ?? mdadmConfigFiles) {
    configs[file] = await readOptional(file);
  }

  return {
    level: options.level,
    members,
    mdstat,
    details,
    configs,
    ...(options.recordedUuid === undefined ? {} : { recordedUuid: options.recordedUuid }),
  };
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }

    throw error;
  }
}
