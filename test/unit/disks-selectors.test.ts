import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createDirectoryIdentifyReader } from '../../agent/disks/identify.js';
import { readInventory, type Disk, type Inventory } from '../../agent/disks/inventory.js';
import {
  isMissingDevice,
  parseSelector,
  resolveDeviceList,
  resolveSelector,
  selectInstanceStore,
  SelectorError,
  type InstanceStoreMode,
  type Pool,
} from '../../agent/disks/selectors.js';
import type { Signatures } from '../../agent/host/signatures.js';
import { buildHostTree, type FixtureDevice, type FixtureHost } from './fixtures/host-tree.js';
import { buildIdentifyController } from './fixtures/shapes/identify.js';
import {
  nvme,
  rootDisk,
  rootOnNvme0,
  serialOf,
  shapes,
  volume,
  type Failure,
} from './fixtures/shapes/shapes.js';

const blank: Signatures = {
  fsType: undefined,
  uuid: undefined,
  label: undefined,
  partitionTable: undefined,
  all: [],
};

function signaturesFrom(table: Record<string, Partial<Signatures>> = {}) {
  return async (disk: Disk): Promise<Signatures> => ({ ...blank, ...table[disk.name] });
}

async function load(devices: FixtureDevice[], mountinfo: string) {
  const fixture = await buildHostTree(devices, mountinfo);
  const inventory = await readInventory(fixture.host, {
    identify: createDirectoryIdentifyReader(fixture.identifyDir),
  });
  return { fixture, inventory };
}

/** Asserts a failure's class, exit code, problem and message, and that it lists what it saw. */
function failsWith(expected: Failure) {
  return (error: unknown) => {
    assert.ok(error instanceof SelectorError, `expected a SelectorError, got ${String(error)}`);
    assert.equal(error.exitCode, 3);
    assert.equal(error.problem, expected.problem);
    assert.match(error.message, expected.message);
    assert.match(error.message, /; seen: /);
    return true;
  };
}

function names(pool: Pool): string[] {
  return pool.members.map((disk) => disk.name);
}

for (const shape of shapes) {
  describe(`on ${shape.name}`, () => {
    let fixture: FixtureHost;
    let inventory: Inventory;
    before(async () => {
      ({ fixture, inventory } = await load(shape.devices, shape.mountinfo));
    });
    after(() => fixture.cleanup());

    for (const [selector, expected] of Object.entries(shape.mappings)) {
      test(`mapping name ${selector} is ${expected.name}, found through the ${expected.via}`, async () => {
        const resolution = await resolveSelector(inventory, selector);

        assert.equal(resolution.disk.name, expected.name);
        assert.equal(resolution.via, expected.via);
      });
    }

    for (const [volumeId, name] of Object.entries(shape.volumes)) {
      test(`volume id ${volumeId} is ${name}, by its NVMe serial`, async () => {
        const resolution = await resolveSelector(inventory, volumeId);

        assert.equal(resolution.disk.name, name);
        assert.equal(resolution.via, 'volume id');
      });
    }

    test('every device is found by its own /dev path', async () => {
      for (const device of shape.devices) {
        const resolution = await resolveSelector(inventory, `/dev/${device.name}`);

        assert.equal(resolution.disk.name, device.name);
      }
    });

    for (const expected of shape.resolves) {
      test(`${expected.selector} is ${expected.name}, found by ${expected.via}`, async () => {
        const resolution = await resolveSelector(inventory, expected.selector);

        assert.equal(resolution.disk.name, expected.name);
        assert.equal(resolution.via, expected.via);
      });
    }

    for (const expected of shape.fails) {
      test(`${expected.selector} fails as ${expected.problem}: ${expected.message.source}`, async () => {
        await assert.rejects(resolveSelector(inventory, expected.selector), failsWith(expected));
      });
    }

    for (const [mode, expected] of Object.entries(shape.instanceStore)) {
      const outcome = Array.isArray(expected) ? expected.join(' + ') : expected.problem;
      test(`volume.instanceStore ${mode} gives ${outcome}`, () => {
        const options =
          shape.serialPattern === undefined ? {} : { serialPattern: shape.serialPattern };
        const select = () => selectInstanceStore(inventory, mode as InstanceStoreMode, options);
        if (Array.isArray(expected)) {
          const pool = select();
          assert.deepEqual(names(pool), expected);
          assert.equal(pool.kind, expected.length === 1 ? 'single' : 'array');
        } else {
          assert.throws(select, failsWith(expected));
        }
      });
    }

    const auto = typeof shape.auto === 'string' ? shape.auto : shape.auto.problem;
    test(`auto gives ${auto}`, async () => {
      const resolve = () =>
        resolveSelector(inventory, 'auto', {
          label: 'ctrvol',
          getSignatures: signaturesFrom(shape.signatures),
        });
      if (typeof shape.auto === 'string') {
        assert.equal((await resolve()).disk.name, shape.auto);
      } else {
        await assert.rejects(resolve(), failsWith(shape.auto));
      }
    });

    test(`the root filesystem rests on ${shape.root.join(', ')}`, () => {
      assert.deepEqual([...inventory.rootNames].sort(), [...shape.root].sort());
      for (const disk of inventory.disks) {
        assert.equal(disk.backsRoot, shape.root.includes(disk.name), disk.name);
      }
    });
  });
}

describe('reading a selector', () => {
  const cases: [string, string][] = [
    ['/dev/nvme1n1', 'path'],
    ['/dev/loop3', 'path'],
    ['/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123', 'path'],
    ['/dev/disk/by-uuid/6f1c2a9e-3b44-4d0e-9c61-2f0d7c1e5a10', 'path'],
    ['/dev/disk/by-label/ctrvol', 'path'],
    ['/dev/md/ctrvol', 'path'],
    ['xvdb', 'mapping-name'],
    ['/dev/xvdb', 'mapping-name'],
    ['sdf', 'mapping-name'],
    ['/dev/sdf', 'mapping-name'],
    ['xvdba', 'mapping-name'],
    ['sda1', 'mapping-name'],
    ['vol-0123456789abcdef0', 'volume-id'],
    ['vol0123456789abcdef0', 'volume-id'],
    ['vol-01234567', 'volume-id'],
    ['auto', 'auto'],
  ];

  for (const [text, kind] of cases) {
    test(`reads ${text} as a ${kind}`, () => {
      assert.equal(parseSelector(text).kind, kind);
    });
  }

  const invalid = ['nvme1n1', 'xvdb/', 'vol-xyz', 'vol-0123', 'AUTO', 'disk/by-id/x', ''];
  for (const text of invalid) {
    test(`refuses "${text}" as a config error (exit 2) naming the allowed forms`, () => {
      assert.throws(() => parseSelector(text, 'volume.devices[1]'), {
        exitCode: 2,
        message: new RegExp(`^volume\\.devices\\[1\\]: got "${text}"; allowed: a device path`),
      });
    });
  }
});

describe('selectors that must not guess', () => {
  test('a udev link contradicted by the linked device’s own vendor area is a conflict', async (t) => {
    const devices = [
      ...rootDisk(),
      ...nvme({
        index: 1,
        kind: 'ebs',
        serial: serialOf(volume(1)),
        sizeBytes: 1e10,
        mapping: 'xvdc',
      }),
    ].map((device) =>
      device.name === 'nvme1n1' ? { ...device, links: ['xvdb', ...(device.links ?? [])] } : device,
    );
    const { fixture, inventory } = await load(devices, rootOnNvme0);
    t.after(fixture.cleanup);

    await assert.rejects(
      resolveSelector(inventory, 'xvdb'),
      failsWith({
        problem: 'conflict',
        message:
          /\/dev\/xvdb leads to nvme1n1, but the NVMe vendor area of nvme1n1 names it "xvdc"/,
      }),
    );
  });

  test('a link to one device while another’s vendor area claims the name is a conflict', async (t) => {
    const devices = [
      ...rootDisk(),
      ...nvme({ index: 1, kind: 'ebs', serial: serialOf(volume(1)), sizeBytes: 1e10 }),
      ...nvme({
        index: 2,
        kind: 'ebs',
        serial: serialOf(volume(2)),
        sizeBytes: 1e10,
        mapping: 'xvdb',
        udev: false,
      }),
    ].map((device) => (device.name === 'nvme1n1' ? { ...device, links: ['xvdb'] } : device));
    const { fixture, inventory } = await load(devices, rootOnNvme0);
    t.after(fixture.cleanup);

    await assert.rejects(
      resolveSelector(inventory, '/dev/xvdb'),
      failsWith({
        problem: 'conflict',
        message: /leads to nvme1n1, but the NVMe vendor area of nvme2n1 names xvdb/,
      }),
    );
  });

  test('two vendor areas naming the same mapping is a conflict, not a choice', async (t) => {
    const devices = [1, 2].flatMap((index) =>
      nvme({
        index,
        kind: 'ebs',
        serial: serialOf(volume(index)),
        sizeBytes: 1e10,
        mapping: 'sdf',
        udev: false,
      }),
    );
    const { fixture, inventory } = await load([...rootDisk(), ...devices], rootOnNvme0);
    t.after(fixture.cleanup);

    await assert.rejects(
      resolveSelector(inventory, 'sdf'),
      failsWith({
        problem: 'conflict',
        message: /vendor areas of nvme1n1 and nvme2n1 all name sdf/,
      }),
    );
  });

  test('a dangling udev link falls through to the vendor area', async (t) => {
    const devices = [
      ...rootDisk(),
      ...nvme({
        index: 1,
        kind: 'ebs',
        serial: serialOf(volume(1)),
        sizeBytes: 1e10,
        mapping: 'xvdb',
        udev: false,
      }),
      { name: 'nvme9n1', majorMinor: '259:72', links: ['xvdb'] },
    ];
    const { fixture, inventory } = await load(devices, rootOnNvme0);
    t.after(fixture.cleanup);
    // The device went away after udev made its link: the link now leads nowhere.
    await rm(path.join(fixture.host.dev, 'nvme9n1'));

    const resolution = await resolveSelector(inventory, 'xvdb');

    assert.equal(resolution.disk.name, 'nvme1n1');
    assert.equal(resolution.via, 'vendor area');
  });

  test('a path to something that is not a block device is refused', async (t) => {
    const { fixture, inventory } = await load(rootDisk(), rootOnNvme0);
    t.after(fixture.cleanup);
    await writeFile(path.join(fixture.host.dev, 'not-a-disk'), '');

    await assert.rejects(
      resolveSelector(inventory, '/dev/not-a-disk'),
      failsWith({ problem: 'refused', message: /^\/dev\/not-a-disk is not a block device/ }),
    );
  });

  test('a missing device is a problem that waiting can cure; a conflict is not', async (t) => {
    const { fixture, inventory } = await load(rootDisk(), rootOnNvme0);
    t.after(fixture.cleanup);

    const missing = await resolveSelector(inventory, 'xvdz').catch((error: unknown) => error);

    assert.equal(isMissingDevice(missing), true);
    assert.equal(isMissingDevice(new SelectorError('conflict', 'x', [])), false);
  });
});

describe('auto', () => {
  const devices = [
    ...rootDisk(),
    ...[1, 2, 3].flatMap((index) =>
      nvme({ index, kind: 'ebs', serial: serialOf(volume(index)), sizeBytes: 1e10 }),
    ),
  ];
  const xfs = (label: string): Partial<Signatures> => ({ fsType: 'xfs', label, all: ['xfs'] });
  const cases: [string, Record<string, Partial<Signatures>>, string | Failure][] = [
    [
      'takes the one volume carrying ctrvol’s label over blank ones',
      { nvme2n1: xfs('ctrvol') },
      'nvme2n1',
    ],
    [
      'refuses two volumes that both carry ctrvol’s label, naming them',
      { nvme1n1: xfs('ctrvol'), nvme3n1: xfs('ctrvol') },
      {
        problem: 'ambiguous',
        message: /^auto found 2 EBS volumes labelled "ctrvol": nvme1n1, nvme3n1; seen: /,
      },
    ],
    [
      'refuses two blank volumes, naming them',
      { nvme3n1: xfs('data') },
      {
        problem: 'ambiguous',
        message:
          /^auto found 2 blank non-root EBS volumes: nvme1n1, nvme2n1; seen: nvme0n1 \(20\.0 GiB/,
      },
    ],
    [
      'takes the only blank volume and ignores one labelled ctrvol with another filesystem type',
      { nvme1n1: xfs('data'), nvme2n1: { fsType: 'btrfs', label: 'ctrvol' }, nvme3n1: {} },
      'nvme3n1',
    ],
    [
      'treats a noise atari table as blank, as the resolve step does',
      {
        nvme1n1: xfs('data'),
        nvme2n1: xfs('other'),
        nvme3n1: { partitionTable: 'atari', all: ['atari'] },
      },
      'nvme3n1',
    ],
    [
      'says why each volume was passed over when none will do',
      {
        nvme1n1: xfs('data'),
        nvme2n1: { partitionTable: 'gpt', all: ['gpt'] },
        nvme3n1: { all: ['LVM2_member'], fsType: 'LVM2_member' },
      },
      {
        problem: 'missing',
        message:
          /nvme0n1 holds the root filesystem, nvme1n1 carries xfs with label "data", nvme2n1 carries a gpt partition table, nvme3n1 carries LVM2_member/,
      },
    ],
  ];

  for (const [name, table, expected] of cases) {
    test(name, async (t) => {
      const { fixture, inventory } = await load(devices, rootOnNvme0);
      t.after(fixture.cleanup);
      const resolve = () =>
        resolveSelector(inventory, 'auto', {
          label: 'ctrvol',
          getSignatures: signaturesFrom(table),
        });

      if (typeof expected === 'string') {
        assert.equal((await resolve()).disk.name, expected);
      } else {
        await assert.rejects(resolve(), failsWith(expected));
      }
    });
  }

  test('never asks blkid about the root disk or a device held by md', async (t) => {
    const held = nvme({ index: 4, kind: 'ebs', serial: serialOf(volume(4)), sizeBytes: 1e10 }).map(
      (device) => ({ ...device, holders: ['md127'] }),
    );
    const { fixture, inventory } = await load([...devices, ...held], rootOnNvme0);
    t.after(fixture.cleanup);
    const asked: string[] = [];

    await resolveSelector(inventory, 'auto', {
      label: 'ctrvol',
      getSignatures: async (disk) => {
        asked.push(disk.name);
        return disk.name === 'nvme1n1' ? blank : { ...blank, fsType: 'xfs', all: ['xfs'] };
      },
    });

    assert.deepEqual(asked.sort(), ['nvme1n1', 'nvme2n1', 'nvme3n1']);
  });
});

describe('explicit device lists', () => {
  const devices = [
    ...rootDisk(),
    ...[1, 2, 3, 4].flatMap((index) =>
      nvme({
        index,
        kind: 'ebs',
        serial: serialOf(volume(index)),
        sizeBytes: 1e10,
        mapping: `xvd${'bcde'[index - 1]}`,
      }),
    ),
  ];
  const cases: [string, string[], 'raid0' | 'raid10', string[] | Failure][] = [
    [
      'pools devices named by any selector form, in name order',
      ['xvdc', volume(1), '/dev/nvme3n1'],
      'raid0',
      ['nvme1n1', 'nvme2n1', 'nvme3n1'],
    ],
    [
      'builds raid10 from four',
      ['xvdb', 'xvdc', 'xvdd', 'xvde'],
      'raid10',
      ['nvme1n1', 'nvme2n1', 'nvme3n1', 'nvme4n1'],
    ],
    [
      'refuses two selectors for the same device',
      ['xvdb', volume(1)],
      'raid0',
      { problem: 'refused', message: /"xvdb" and "vol-0[0-9a-f]+" are the same device, nvme1n1/ },
    ],
    [
      'refuses raid10 from three, naming them',
      ['xvdb', 'xvdc', 'xvdd'],
      'raid10',
      {
        problem: 'refused',
        message:
          /raid10 needs at least 4 disks; there are 3: nvme1n1 \(xvdb\), nvme2n1 \(xvdc\), nvme3n1 \(xvdd\);/,
      },
    ],
    [
      'refuses the root disk',
      ['xvda', 'xvdb'],
      'raid0',
      {
        problem: 'refused',
        message: /^volume\.devices: nvme0n1 \(xvda\) holds the root filesystem/,
      },
    ],
    [
      'says which entry is missing',
      ['xvdb', 'xvdq'],
      'raid0',
      { problem: 'missing', message: /no device has the mapping name xvdq/ },
    ],
  ];

  for (const [name, selectors, level, expected] of cases) {
    test(name, async (t) => {
      const { fixture, inventory } = await load(devices, rootOnNvme0);
      t.after(fixture.cleanup);
      const resolve = () => resolveDeviceList(inventory, selectors, level);

      if (Array.isArray(expected)) {
        const pool = await resolve();
        assert.deepEqual(names(pool), expected);
        assert.equal(pool.kind, 'array');
      } else {
        await assert.rejects(resolve(), failsWith(expected));
      }
    });
  }

  test('refuses auto inside a list as a config error naming the entry', async (t) => {
    const { fixture, inventory } = await load(devices, rootOnNvme0);
    t.after(fixture.cleanup);

    await assert.rejects(resolveDeviceList(inventory, ['xvdb', 'auto'], 'raid0'), {
      exitCode: 2,
      message: /^volume\.devices\[1\]: got "auto"/,
    });
  });
});

describe('instance store chosen by serial pattern', () => {
  test('refuses a pattern that also matches the root disk', async (t) => {
    const { fixture, inventory } = await load(
      [...rootDisk(), ...nvme({ index: 1, kind: 'qemu', serial: 'vol-like-1', sizeBytes: 1e10 })],
      rootOnNvme0,
    );
    t.after(fixture.cleanup);

    assert.throws(
      () => selectInstanceStore(inventory, 'raid0', { serialPattern: 'vol*' }),
      failsWith({
        problem: 'refused',
        message: /instanceStore: nvme0n1 \(xvda\) matched but holds the root/,
      }),
    );
  });

  test('keeps disks already held by an assembled array: the md planner decides about them', async (t) => {
    const held = [1, 2].flatMap((index) =>
      nvme({ index, kind: 'instance-store', serial: `AWS${index}`, sizeBytes: 1e11 }).map(
        (device) => ({ ...device, holders: ['md127'] }),
      ),
    );
    const { fixture, inventory } = await load([...rootDisk(), ...held], rootOnNvme0);
    t.after(fixture.cleanup);

    assert.deepEqual(names(selectInstanceStore(inventory, 'raid0')), ['nvme1n1', 'nvme2n1']);
  });

  test('accepts a regular expression as well as a glob', async (t) => {
    const { fixture, inventory } = await load(
      [0, 1, 2, 3].flatMap((index) =>
        nvme({ index: index + 1, kind: 'qemu', serial: `is-${index}`, sizeBytes: 1e10 }),
      ),
      rootOnNvme0,
    );
    t.after(fixture.cleanup);

    const pool = selectInstanceStore(inventory, 'raid10', { serialPattern: /^is-[0-3]$/ });

    assert.equal(pool.kind, 'array');
    assert.deepEqual(names(pool), ['nvme1n1', 'nvme2n1', 'nvme3n1', 'nvme4n1']);
  });
});

describe('Identify data that cannot be trusted or read', () => {
  test('an Identify serial that is not the sysfs serial is set aside, not believed', async (t) => {
    const devices = [
      ...rootDisk(),
      ...nvme({ index: 1, kind: 'ebs', serial: serialOf(volume(1)), sizeBytes: 1e10, udev: false }),
    ].map((device) =>
      device.name === 'nvme1n1'
        ? {
            ...device,
            identify: buildIdentifyController({
              serial: serialOf(volume(2)),
              model: 'Amazon Elastic Block Store',
              mappingName: 'xvdb',
            }),
          }
        : device,
    );
    const { fixture, inventory } = await load(devices, rootOnNvme0);
    t.after(fixture.cleanup);

    const disk = inventory.disks.find((each) => each.name === 'nvme1n1');
    assert.equal(disk?.identify, undefined);
    assert.match(disk?.identifyError ?? '', /Identify serial vol0.* is not the sysfs serial/);
    await assert.rejects(
      resolveSelector(inventory, 'xvdb'),
      failsWith({ problem: 'missing', message: /unreadable on 1: nvme1n1: Identify serial/ }),
    );
  });

  test('a reader that fails is reported in the missing-device message', async (t) => {
    const fixture = await buildHostTree(
      [
        ...rootDisk(),
        ...nvme({ index: 1, kind: 'ebs', serial: 'vol0aa', sizeBytes: 1e10, udev: false }),
      ],
      rootOnNvme0,
    );
    t.after(fixture.cleanup);
    const inventory = await readInventory(fixture.host, {
      identify: {
        read: async () => {
          throw new Error('required tool not found: nvme (install nvme-cli)');
        },
      },
    });

    await assert.rejects(
      resolveSelector(inventory, 'xvdb'),
      failsWith({
        problem: 'missing',
        message:
          /no NVMe vendor area could be read \(unreadable on 2: nvme0n1: required tool not found: nvme \(install nvme-cli\)\)/,
      }),
    );
  });

  test('without a reader the message says the vendor areas were not read', async (t) => {
    const fixture = await buildHostTree(rootDisk(), rootOnNvme0);
    t.after(fixture.cleanup);
    const inventory = await readInventory(fixture.host);

    await assert.rejects(
      resolveSelector(inventory, 'xvdb'),
      failsWith({ problem: 'missing', message: /the NVMe vendor areas were not read/ }),
    );
  });
});
