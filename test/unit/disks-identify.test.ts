import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  cacheIdentifyReader,
  createDirectoryIdentifyReader,
  createEbsnvmeIdReader,
  createIdentifyReader,
  createNvmeCliReader,
  parseIdentifyController,
  type IdentifyReader,
} from '../../agent/disks/identify.js';
import { EnvironmentError } from '../../agent/errors.js';
import { createRunner, type Runner, type RunOptions, type RunResult } from '../../agent/exec.js';
import { createLogger } from '../../agent/log/logger.js';
import { buildIdentifyController, qemuVendorId } from './fixtures/shapes/identify.js';

const ebs = { serial: 'vol0123456789abcdef0', model: 'Amazon Elastic Block Store' };
const target = { name: 'nvme1n1', path: '/dev/nvme1n1', serial: ebs.serial };

describe('parsing Identify Controller data', () => {
  test('reads the vendor id, serial, model and firmware with their padding trimmed', () => {
    const parsed = parseIdentifyController(
      buildIdentifyController({ ...ebs, firmware: '2.0', mappingName: 'xvdb' }),
    );

    assert.deepEqual(parsed, {
      vendorId: 0x1d0f,
      serial: 'vol0123456789abcdef0',
      model: 'Amazon Elastic Block Store',
      firmware: '2.0',
      rawMappingName: 'xvdb',
      mappingName: 'xvdb',
    });
  });

  const area = (text: string, fill = 0) => {
    const bytes = Buffer.alloc(32, fill);
    Buffer.from(text, 'latin1').copy(bytes);
    return bytes;
  };
  const cases: [string, Buffer, string | undefined, string | undefined][] = [
    ['a name padded with spaces', area('xvdb', 0x20), 'xvdb', 'xvdb'],
    ['a name padded with NULs', area('xvdb'), 'xvdb', 'xvdb'],
    ['/dev/sdf padded with spaces', area('/dev/sdf', 0x20), '/dev/sdf', 'sdf'],
    ['/dev/sdf padded with NULs', area('/dev/sdf'), '/dev/sdf', 'sdf'],
    ['a root mapping name with a digit', area('sda1', 0x20), 'sda1', 'sda1'],
    ['a name after leading spaces', area('   xvdc', 0x20), 'xvdc', 'xvdc'],
    ['a name with spaces before its NULs', area('xvdd   '), 'xvdd', 'xvdd'],
    ['a name ended by a NUL with bytes after it', area('xvde\0junk'), 'xvde', 'xvde'],
    ['an all-zero area', area(''), undefined, undefined],
    ['an all-space area', area('', 0x20), undefined, undefined],
    ['bytes that are not printable text', area('\x01\xff\xfe'), undefined, undefined],
    ['a name with a control byte inside', area('xv\x07db'), undefined, undefined],
  ];

  for (const [name, vendorArea, raw, normalized] of cases) {
    test(`reads ${name} as ${raw === undefined ? 'no name' : `"${normalized}"`}`, () => {
      const parsed = parseIdentifyController(buildIdentifyController({ ...ebs, vendorArea }));

      assert.equal(parsed.rawMappingName, raw);
      assert.equal(parsed.mappingName, normalized);
    });
  }

  test('does not read another vendor’s vendor area as a mapping name', () => {
    const parsed = parseIdentifyController(
      buildIdentifyController({
        vendorId: qemuVendorId,
        serial: 'deadbeef',
        model: 'QEMU NVMe Ctrl',
        mappingName: 'xvdb',
      }),
    );

    assert.equal(parsed.model, 'QEMU NVMe Ctrl');
    assert.equal(parsed.mappingName, undefined);
  });

  for (const size of [0, 4095, 4097, 8192]) {
    test(`refuses ${size} bytes with exit code 3`, () => {
      assert.throws(() => parseIdentifyController(Buffer.alloc(size)), {
        exitCode: 3,
        message: `NVMe Identify Controller data is ${size} bytes; expected 4096`,
      });
    });
  }
});

/** A runner that answers from a table keyed by the command line, and records what it ran. */
function fakeRunner(
  answer: (command: string, options: RunOptions | undefined) => Partial<RunResult>,
): Runner & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    stats: { calls: 0, childMs: 0 },
    async run(file, args, options) {
      const command = [file, ...args].join(' ');
      calls.push(command);
      return { stdout: '', stderr: '', exitCode: 0, durationMs: 1, ...answer(command, options) };
    },
  };
}

const missingTool = (file: string) =>
  new EnvironmentError(`required tool not found: ${file}`, {
    cause: Object.assign(new Error('spawn ENOENT'), { code: 'ENOENT' }),
  });

describe('reading Identify data from the machine', () => {
  test('nvme-cli’s raw binary comes through the runner as latin1 and is parsed', async () => {
    const binary = buildIdentifyController({ ...ebs, mappingName: '/dev/sdf' });
    let encoding: string | undefined;
    const run = fakeRunner((_, options) => {
      encoding = options?.encoding;
      return { stdout: binary.toString('latin1') };
    });

    const data = await createNvmeCliReader(run).read(target);

    assert.deepEqual(run.calls, ['nvme id-ctrl --raw-binary /dev/nvme1n1']);
    assert.equal(encoding, 'latin1');
    assert.deepEqual(data, {
      source: 'nvme-cli',
      serial: ebs.serial,
      model: ebs.model,
      rawMappingName: '/dev/sdf',
      mappingName: 'sdf',
    });
  });

  test('the real runner carries all 4096 bytes, NULs and high bytes included, unchanged', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ctrvol-identify-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const binary = buildIdentifyController({ ...ebs, mappingName: 'xvdb', padding: 'nul' });
    for (let i = 3200; i < 4096; i += 1) {
      binary[i] = i % 256;
    }
    await writeFile(path.join(dir, 'id.bin'), binary);
    const run = createRunner(createLogger({ format: 'text', level: 'silent', journal: false }));

    const result = await run.run('cat', [path.join(dir, 'id.bin')], { encoding: 'latin1' });

    assert.ok(Buffer.from(result.stdout, 'latin1').equals(binary));
  });

  test('devices that are not NVMe namespaces are not asked', async () => {
    const run = fakeRunner(() => ({}));

    for (const name of ['xvdb', 'vda', 'loop3', 'nvme0n1p1', 'md127']) {
      assert.equal(await createNvmeCliReader(run).read({ ...target, name }), undefined);
      assert.equal(await createEbsnvmeIdReader(run).read({ ...target, name }), undefined);
    }

    assert.deepEqual(run.calls, []);
  });

  const ebsnvmeCases: [string, Partial<RunResult>, string | undefined | RegExp][] = [
    ['prints /dev/sdf', { stdout: '/dev/sdf\n' }, 'sdf'],
    ['prints xvdb', { stdout: 'xvdb\n' }, 'xvdb'],
    ['prints nothing', { stdout: '\n' }, undefined],
    [
      'refuses an instance-store disk',
      { exitCode: 1, stderr: "[ERROR] Not an EBS device: '/dev/nvme1n1'\n" },
      undefined,
    ],
    ['fails otherwise', { exitCode: 1, stderr: 'Permission denied\n' }, /Permission denied/],
  ];
  for (const [name, result, expected] of ebsnvmeCases) {
    test(`ebsnvme-id -b ${name}: ${expected instanceof RegExp ? 'an error' : String(expected)}`, async () => {
      const run = fakeRunner(() => result);
      const read = createEbsnvmeIdReader(run).read(target);

      if (expected instanceof RegExp) {
        await assert.rejects(read, { exitCode: 3, message: expected });
      } else {
        assert.equal((await read)?.mappingName, expected);
      }
      assert.deepEqual(run.calls, ['ebsnvme-id -b /dev/nvme1n1']);
    });
  }

  test('falls back to ebsnvme-id when nvme-cli is not installed, and stops trying nvme', async () => {
    const run = fakeRunner((command) => {
      if (command.startsWith('nvme ')) {
        throw missingTool('nvme');
      }

      return { stdout: 'xvdb\n' };
    });
    const reader = createIdentifyReader(run);

    assert.equal((await reader.read(target))?.mappingName, 'xvdb');
    assert.equal((await reader.read({ ...target, name: 'nvme2n1' }))?.source, 'ebsnvme-id');
    assert.deepEqual(run.calls, [
      'nvme id-ctrl --raw-binary /dev/nvme1n1',
      'ebsnvme-id -b /dev/nvme1n1',
      'ebsnvme-id -b /dev/nvme1n1',
    ]);
  });

  test('a failure of an installed nvme-cli is not hidden behind the fallback', async () => {
    const run = fakeRunner(() => {
      throw new EnvironmentError('nvme id-ctrl --raw-binary /dev/nvme1n1 exited 1');
    });

    await assert.rejects(createIdentifyReader(run).read(target), /exited 1/);
    assert.equal(run.calls.length, 1);
  });

  test('recorded binaries are read by kernel name, and a device without one has none', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ctrvol-identify-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(
      path.join(dir, 'nvme1n1.bin'),
      buildIdentifyController({ ...ebs, mappingName: 'xvdb' }),
    );
    const reader = createDirectoryIdentifyReader(dir);

    assert.equal((await reader.read(target))?.mappingName, 'xvdb');
    assert.equal(await reader.read({ ...target, name: 'nvme2n1' }), undefined);
  });

  test('answers are kept per name and serial, and failures are asked again', async () => {
    let reads = 0;
    let fail = true;
    const inner: IdentifyReader = {
      async read() {
        reads += 1;
        if (fail) {
          fail = false;
          throw new Error('udev race');
        }

        return undefined;
      },
    };
    const reader = cacheIdentifyReader(inner);

    await assert.rejects(reader.read(target), /udev race/);
    await reader.read(target);
    await reader.read(target);
    await reader.read({ ...target, serial: 'vol0ffffffffffffffff' });

    assert.equal(reads, 3);
  });
});
