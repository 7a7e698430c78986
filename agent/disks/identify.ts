import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { EnvironmentError } from '../errors.js';
import type { Runner } from '../exec.js';
import { normalizeMappingName } from './names.js';

/**
 * The NVMe Identify Controller data structure (CNS 01h) is 4096 bytes. The fields ctrvol reads
 * sit at fixed offsets in the base specification; Amazon keeps the block-device mapping name in
 * the first 32 bytes of the vendor-specific area, which starts at byte 3072.
 */
export const identifyControllerSize = 4096;

/** PCI vendor id of Amazon's NVMe controllers, EBS and instance store alike. */
export const amazonVendorId = 0x1d0f;

const fields = {
  vendorId: 0,
  serial: [4, 24],
  model: [24, 64],
  firmware: [64, 72],
  mappingName: [3072, 3104],
} as const;

export interface IdentifyController {
  /** PCI vendor id (bytes 0–1, little-endian). */
  vendorId: number;
  /** Bytes 4–23, space padded: the EBS volume id without its dash for EBS. */
  serial: string;
  /** Bytes 24–63, space padded: "Amazon Elastic Block Store" for EBS. */
  model: string;
  /** Bytes 64–71. */
  firmware: string;
  /** The mapping name as stored: "xvdb", "/dev/sdf"; undefined when the area holds none. */
  rawMappingName: string | undefined;
  /** The same without /dev/, as udev names its link and as selectors compare it. */
  mappingName: string | undefined;
}

export function parseIdentifyController(data: Uint8Array): IdentifyController {
  if (data.length !== identifyControllerSize) {
    throw new EnvironmentError(
      `NVMe Identify Controller data is ${data.length} bytes; expected ${identifyControllerSize}`,
    );
  }

  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const vendorId = bytes.readUInt16LE(fields.vendorId);
  // Other vendors use the vendor-specific area for their own data; only Amazon's controllers put
  // a mapping name there, so anything else is not read as one.
  const rawMappingName =
    vendorId === amazonVendorId ? readCString(bytes, ...fields.mappingName) : undefined;

  return {
    vendorId,
    serial: readPadded(bytes, ...fields.serial),
    model: readPadded(bytes, ...fields.model),
    firmware: readPadded(bytes, ...fields.firmware),
    rawMappingName,
    mappingName: rawMappingName === undefined ? undefined : normalizeMappingName(rawMappingName),
  };
}

/** ASCII fields of the base specification are padded with spaces; some devices pad with NULs. */
function readPadded(bytes: Buffer, start: number, end: number): string {
  return bytes
    .subarray(start, end)
    .toString('latin1')
    .replace(/^[\0 ]+|[\0 ]+$/g, '');
}

/**
 * The mapping name is a C string padded with spaces or NULs. Leading padding is skipped, the name
 * ends at the first NUL (as ebsnvme-id reads it), trailing spaces are dropped, and a result that is
 * not plain printable ASCII is treated as no name at all rather than guessed at.
 */
function readCString(bytes: Buffer, start: number, end: number): string | undefined {
  const text = bytes
    .subarray(start, end)
    .toString('latin1')
    .replace(/^[\0 ]+/, '');
  const name = text.split('\0')[0]?.trimEnd() ?? '';
  return /^[\x21-\x7e]+$/.test(name) ? name : undefined;
}

/** What one device's Identify data says, from whichever source could read it. */
export interface IdentifyData {
  source: 'nvme-cli' | 'ebsnvme-id' | 'recorded';
  /** Undefined when the source does not report it (ebsnvme-id prints only the name). */
  serial: string | undefined;
  model: string | undefined;
  rawMappingName: string | undefined;
  mappingName: string | undefined;
}

/** The device a reader is asked about: its kernel name, its /dev path and its sysfs serial. */
export interface IdentifyTarget {
  name: string;
  path: string;
  serial: string | undefined;
}

export interface IdentifyReader {
  /**
   * The device's Identify data, or undefined when it has none to offer (not NVMe, not EBS for
   * ebsnvme-id, no recording). Throws when it should have been readable and was not.
   */
  read(target: IdentifyTarget): Promise<IdentifyData | undefined>;
}

const namespacePattern = /^nvme\d+n\d+$/;

function fromController(controller: IdentifyController, source: IdentifyData['source']) {
  const { serial, model, rawMappingName, mappingName } = controller;
  return { source, serial, model, rawMappingName, mappingName };
}

/**
 * nvme-cli's `nvme id-ctrl --raw-binary` prints the 4096 bytes as they came from the controller.
 * The runner's latin1 encoding maps every byte to one character and back, so the binary survives
 * the text interface unchanged.
 */
export function createNvmeCliReader(run: Runner): IdentifyReader {
  return {
    async read(target) {
      if (!namespacePattern.test(target.name)) {
        return undefined;
      }

      const result = await run.run('nvme', ['id-ctrl', '--raw-binary', target.path], {
        encoding: 'latin1',
        timeoutMs: 10_000,
        packageHint: 'nvme-cli',
      });
      return fromController(
        parseIdentifyController(Buffer.from(result.stdout, 'latin1')),
        'nvme-cli',
      );
    },
  };
}

/**
 * amazon-ec2-utils' ebsnvme-id reads the same field (preferring the namespace's copy) and prints
 * just the name. It refuses, with exit 1, any device that is not EBS.
 */
export function createEbsnvmeIdReader(run: Runner): IdentifyReader {
  return {
    async read(target) {
      if (!namespacePattern.test(target.name)) {
        return undefined;
      }

      const result = await run.run('ebsnvme-id', ['-b', target.path], {
        okExitCodes: [1],
        timeoutMs: 10_000,
        packageHint: 'amazon-ec2-utils',
      });
      if (result.exitCode === 1) {
        if (/not an ebs device/i.test(result.stderr)) {
          return undefined;
        }

        throw new EnvironmentError(`ebsnvme-id -b ${target.path} failed: ${result.stderr.trim()}`);
      }

      const raw = result.stdout.trim();
      return {
        source: 'ebsnvme-id',
        serial: undefined,
        model: undefined,
        rawMappingName: raw === '' ? undefined : raw,
        mappingName: raw === '' ? undefined : normalizeMappingName(raw),
      };
    },
  };
}

/**
 * nvme-cli where it is installed (it also gives the serial and model to cross-check), else
 * ebsnvme-id. Both ship on AL2023; a Debian or Ubuntu node may have only one of them.
 */
export function createIdentifyReader(run: Runner): IdentifyReader {
  const nvme = createNvmeCliReader(run);
  const ebsnvmeId = createEbsnvmeIdReader(run);
  let nvmeMissing = false;

  return {
    async read(target) {
      if (!nvmeMissing) {
        try {
          return await nvme.read(target);
        } catch (error) {
          // The runner reports a missing program as an EnvironmentError caused by ENOENT.
          const cause = (error as { cause?: { code?: string } }).cause;
          if (cause?.code !== 'ENOENT') {
            throw error;
          }

          nvmeMissing = true;
        }
      }

      return ebsnvmeId.read(target);
    },
  };
}

/**
 * Recorded binaries, one NAME.bin per kernel name, in a directory: how unit tests and fixture
 * trees supply the vendor area that no test machine has. A device without a recording has no
 * Identify data.
 */
export function createDirectoryIdentifyReader(dir: string): IdentifyReader {
  return {
    async read(target) {
      let data: Buffer;
      try {
        data = await readFile(path.join(dir, `${target.name}.bin`));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          return undefined;
        }

        throw error;
      }

      return fromController(parseIdentifyController(data), 'recorded');
    },
  };
}

/**
 * A controller's Identify data never changes while it is attached, and the wait for a late device
 * asks again every half second. Answers are kept per kernel name and serial, so a name that now
 * belongs to another volume (NVMe numbering is per boot, and a detach frees it) is asked afresh.
 * Failures are not kept: a udev or driver race can clear up on the next poll.
 */
export function cacheIdentifyReader(reader: IdentifyReader): IdentifyReader {
  const answers = new Map<string, IdentifyData | undefined>();
  return {
    async read(target) {
      const key = `${target.name}\0${target.serial ?? ''}`;
      if (answers.has(key)) {
        return answers.get(key);
      }

      const answer = await reader.read(target);
      answers.set(key, answer);
      return answer;
    },
  };
}
