import { EnvironmentError } from '../errors.js';
import type { Runner } from '../exec.js';

/** What is written on a device, as libblkid and wipefs see it. */
export interface Signatures {
  /** Filesystem type (TYPE), if blkid found one. */
  fsType: string | undefined;
  uuid: string | undefined;
  label: string | undefined;
  /** Partition table type (PTTYPE), if any. */
  partitionTable: string | undefined;
  /** Every signature wipefs would erase, by type ("xfs", "atari", "LVM2_member"…). */
  all: string[];
}

export async function probeSignatures(run: Runner, devicePath: string): Promise<Signatures> {
  // Both only read the device; side by side, the probe costs one child's time, not two.
  const [fields, wipefs] = await Promise.all([
    probeBlkid(run, devicePath),
    run.run('wipefs', ['--no-act', '--json', devicePath], { packageHint: 'util-linux' }),
  ]);

  return {
    fsType: fields.TYPE,
    uuid: fields.UUID,
    label: fields.LABEL,
    partitionTable: fields.PTTYPE,
    all: parseWipefs(wipefs.stdout),
  };
}

/**
 * What a device carries right after ctrvol's own mkfs: blkid alone, since wipefs could only
 * list the filesystem just made, and at boot every child process counts.
 */
export async function probeNewFilesystem(run: Runner, devicePath: string): Promise<Signatures> {
  const fields = await probeBlkid(run, devicePath);
  return {
    fsType: fields.TYPE,
    uuid: fields.UUID,
    label: fields.LABEL,
    partitionTable: fields.PTTYPE,
    all: fields.TYPE === undefined ? [] : [fields.TYPE],
  };
}

async function probeBlkid(run: Runner, devicePath: string): Promise<Record<string, string>> {
  // -p probes the device itself rather than blkid's cache, which can be stale after a mkfs.
  // Exit 2 means nothing was found.
  const blkid = await run.run('blkid', ['-p', '-o', 'export', devicePath], {
    okExitCodes: [2, 8],
    packageHint: 'util-linux',
  });
  if (blkid.exitCode === 8) {
    // libblkid found more than one filesystem and could not choose: not blank, not ours.
    throw new EnvironmentError(
      `${devicePath} carries conflicting signatures (blkid cannot tell which is real)`,
      { hint: 'someone else may own this device: check volume.device; nothing was changed' },
    );
  }

  return parseExport(blkid.stdout);
}

export function parseExport(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const equals = line.indexOf('=');
    if (equals > 0) {
      // blkid -o export escapes shell metacharacters with a backslash.
      fields[line.slice(0, equals)] = line.slice(equals + 1).replace(/\\(.)/g, '$1');
    }
  }

  return fields;
}

export function parseWipefs(text: string): string[] {
  if (text.trim() === '') {
    return [];
  }

  const parsed = JSON.parse(text) as { signatures?: { type?: string }[] };
  return (parsed.signatures ?? []).map((signature) => signature.type ?? 'unknown');
}

/**
 * Random data on a fresh encrypted EBS volume matches libblkid's loose Atari partition-table
 * check about once in 1,800 volumes (Bottlerocket met it in production). A table of that type
 * that gave the kernel no partitions is noise, not data.
 */
export function isBlank(signatures: Signatures, partitionCount: number): boolean {
  const noise = signatures.all.every((type) => type === 'atari');
  const tableIsNoise =
    signatures.partitionTable === undefined || signatures.partitionTable === 'atari';

  return signatures.fsType === undefined && tableIsNoise && noise && partitionCount === 0;
}
