import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { createDirectoryIdentifyReader } from '../../agent/disks/identify.js';
import { describeDisk, readInventory } from '../../agent/disks/inventory.js';
import { buildHostTree } from './fixtures/host-tree.js';
import { benchmarkResolution } from './fixtures/shapes/benchmark.js';
import { shapes, volume } from './fixtures/shapes/shapes.js';

function shapeNamed(prefix: string) {
  const shape = shapes.find((each) => each.name.startsWith(prefix));
  assert.ok(shape !== undefined, prefix);
  return shape;
}

async function inventoryOf(prefix: string, includeVirtual = false) {
  const shape = shapeNamed(prefix);
  const fixture = await buildHostTree(shape.devices, shape.mountinfo);
  const inventory = await readInventory(fixture.host, {
    identify: createDirectoryIdentifyReader(fixture.identifyDir),
    includeVirtual,
  });
  return { fixture, inventory };
}

describe('the inventory of block devices', () => {
  test('lists whole disks only, leaving out RAM disks, zram, optical drives and idle loops', async (t) => {
    const { fixture, inventory } = await inventoryOf('the VM guest');
    t.after(fixture.cleanup);

    assert.deepEqual(
      inventory.disks.map((disk) => disk.name),
      ['loop3', 'nvme0n1', 'nvme1n1', 'vda', 'vdb'],
    );
  });

  test('lists md and dm devices only when asked', async (t) => {
    const plain = await inventoryOf('root on an md mirror');
    const virtual = await inventoryOf('root on an md mirror', true);
    t.after(plain.fixture.cleanup);
    t.after(virtual.fixture.cleanup);

    assert.equal(
      plain.inventory.disks.some((disk) => disk.name === 'md0'),
      false,
    );
    assert.equal(virtual.inventory.disks.find((disk) => disk.name === 'md0')?.backsRoot, true);
  });

  test('describes an EBS data volume with its kind, volume id, links and mapping name', async (t) => {
    const { fixture, inventory } = await inventoryOf('m5.large');
    t.after(fixture.cleanup);

    const disk = inventory.disks.find((each) => each.name === 'nvme1n1');

    assert.ok(disk !== undefined);
    assert.equal(disk.kind, 'ebs');
    assert.equal(disk.model, 'Amazon Elastic Block Store');
    assert.equal(disk.volumeId, volume(1));
    assert.deepEqual(disk.links, ['xvdb']);
    assert.equal(disk.mappingName, 'xvdb');
    assert.equal(disk.identify?.source, 'recorded');
    assert.equal(disk.backsRoot, false);
    assert.equal(
      describeDisk(disk),
      `nvme1n1 (100.0 GiB, Amazon Elastic Block Store, serial ${disk.serial}, mapping xvdb)`,
    );
  });

  test('tells instance store from EBS by model, and gives instance store no volume id', async (t) => {
    const { fixture, inventory } = await inventoryOf('m6id');
    t.after(fixture.cleanup);

    assert.deepEqual(
      inventory.disks.map((disk) => [disk.name, disk.kind, disk.volumeId !== undefined]),
      [
        ['nvme0n1', 'ebs', true],
        ['nvme1n1', 'instance-store', false],
        ['nvme2n1', 'ebs', true],
      ],
    );
  });

  test('takes the mapping name from the vendor area when udev has made no link', async (t) => {
    const { fixture, inventory } = await inventoryOf('right after boot');
    t.after(fixture.cleanup);

    const disk = inventory.disks.find((each) => each.name === 'nvme1n1');

    assert.deepEqual(disk?.links, []);
    assert.equal(disk?.mappingName, 'xvdb');
  });

  test('lists 28 volumes in the order people count them', async (t) => {
    const { fixture, inventory } = await inventoryOf('a 28-volume');
    t.after(fixture.cleanup);

    assert.equal(inventory.disks.length, 28);
    assert.deepEqual(
      inventory.disks.slice(0, 3).map((disk) => disk.name),
      ['nvme0n1', 'nvme1n1', 'nvme2n1'],
    );
    assert.equal(inventory.disks[10]?.name, 'nvme10n1');
  });

  test('reads a tree that has no /sys/block from /sys/class/block, partitions left out', async (t) => {
    const shape = shapeNamed('m5.large');
    const fixture = await buildHostTree(shape.devices, shape.mountinfo);
    t.after(fixture.cleanup);
    await rm(path.join(fixture.host.sys, 'block'), { recursive: true });

    const inventory = await readInventory(fixture.host);

    assert.deepEqual(
      inventory.disks.map((disk) => disk.name),
      ['nvme0n1', 'nvme1n1'],
    );
  });

  test('gives the Xen nodes their own names as mapping names', async (t) => {
    const { fixture, inventory } = await inventoryOf('a Xen instance');
    t.after(fixture.cleanup);

    assert.deepEqual(
      inventory.disks.map((disk) => [disk.name, disk.mappingName, disk.kind]),
      [
        ['xvda', 'xvda', 'other'],
        ['xvdb', 'xvdb', 'other'],
        ['xvdf', 'xvdf', 'other'],
      ],
    );
  });
});

// The figure itself is for `npm run bench` (scripts/bench/resolution.ts); a timed test would
// fail on a busy machine for no fault of the code. This only keeps the benchmark working.
describe('the resolution benchmark', () => {
  test('resolves every selector of the 28-volume fixture, timing each poll', async () => {
    const result = await benchmarkResolution({ iterations: 1 });

    assert.equal(result.devices, 28);
    assert.ok(result.selectors >= 28 * 2);
    assert.ok(result.pollMs.median > 0);
  });
});
