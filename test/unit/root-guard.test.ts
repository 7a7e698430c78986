import assert from 'node:assert/strict';
import { symlink } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { getRootDiskNames } from '../../agent/disks/sysfs.js';
import { getBlockDevice } from '../../agent/host/block.js';
import { buildHostTree, mountLine } from './fixtures/host-tree.js';

// Each shape puts "/" somewhere else; the guard must find every disk underneath it.
const shapes = [
  {
    name: 'root on a partition of the first NVMe disk',
    devices: [
      { name: 'nvme0n1', majorMinor: '259:0' },
      { name: 'nvme0n1p1', majorMinor: '259:1', parent: 'nvme0n1' },
      { name: 'nvme1n1', majorMinor: '259:2' },
    ],
    root: { majorMinor: '259:1', source: '/dev/nvme0n1p1' },
    expected: ['nvme0n1', 'nvme0n1p1'],
  },
  {
    name: 'root on a whole virtio disk',
    devices: [
      { name: 'vda', majorMinor: '254:0' },
      { name: 'loop3', majorMinor: '7:3' },
    ],
    root: { majorMinor: '254:0', source: '/dev/vda' },
    expected: ['vda'],
  },
  {
    name: 'root on an md array over partitions of two disks',
    devices: [
      { name: 'nvme0n1', majorMinor: '259:0' },
      { name: 'nvme0n1p1', majorMinor: '259:1', parent: 'nvme0n1', holders: ['md0'] },
      { name: 'nvme1n1', majorMinor: '259:2' },
      { name: 'nvme1n1p1', majorMinor: '259:3', parent: 'nvme1n1', holders: ['md0'] },
      { name: 'md0', majorMinor: '9:0', slaves: ['nvme0n1p1', 'nvme1n1p1'] },
    ],
    root: { majorMinor: '9:0', source: '/dev/md0' },
    expected: ['md0', 'nvme0n1', 'nvme0n1p1', 'nvme1n1', 'nvme1n1p1'],
  },
  {
    name: 'root on LVM over a partition',
    devices: [
      { name: 'xvda', majorMinor: '202:0' },
      { name: 'xvda2', majorMinor: '202:2', parent: 'xvda', holders: ['dm-0'] },
      { name: 'dm-0', majorMinor: '253:0', slaves: ['xvda2'] },
      { name: 'xvdb', majorMinor: '202:16' },
    ],
    root: { majorMinor: '253:0', source: '/dev/mapper/vg-root' },
    expected: ['dm-0', 'xvda', 'xvda2'],
  },
  {
    // btrfs gives every subvolume an anonymous device number: only the mount source names it.
    name: 'root on btrfs, whose mountinfo number is anonymous',
    devices: [
      { name: 'nvme0n1', majorMinor: '259:0' },
      { name: 'nvme0n1p2', majorMinor: '259:2', parent: 'nvme0n1' },
      { name: 'nvme1n1', majorMinor: '259:3' },
    ],
    root: { majorMinor: '0:31', source: '/dev/nvme0n1p2' },
    expected: ['nvme0n1', 'nvme0n1p2'],
  },
  {
    name: 'root on an overlay with no block device behind it',
    devices: [{ name: 'loop0', majorMinor: '7:0' }],
    root: { majorMinor: '0:45', source: 'overlay' },
    expected: [],
  },
];

describe('the root-disk guard', () => {
  for (const shape of shapes) {
    test(`finds every device under / with ${shape.name}`, async (t) => {
      const fixture = await buildHostTree(
        shape.devices,
        mountLine(20, shape.root.majorMinor, '/', shape.root.source) +
          mountLine(30, '7:9', '/data', '/dev/loop9'),
      );
      t.after(fixture.cleanup);

      const names = getRootDiskNames(fixture.host);

      assert.deepEqual([...names].sort(), shape.expected);
    });
  }

  test('reads a partition, its parent disk and a disk with partitions from sysfs', async (t) => {
    const fixture = await buildHostTree(
      [
        {
          name: 'nvme0n1',
          majorMinor: '259:0',
          serial: 'vol0123',
          model: 'Amazon Elastic Block Store',
        },
        { name: 'nvme0n1p1', majorMinor: '259:1', parent: 'nvme0n1' },
      ],
      mountLine(20, '259:1', '/', '/dev/nvme0n1p1'),
    );
    t.after(fixture.cleanup);

    const disk = await getBlockDevice(fixture.host, '/dev/nvme0n1');
    const partition = await getBlockDevice(fixture.host, '/dev/nvme0n1p1');

    assert.deepEqual(disk.partitions, ['nvme0n1p1']);
    assert.equal(disk.model, 'Amazon Elastic Block Store');
    assert.equal(disk.serial, 'vol0123');
    assert.equal(disk.path, '/dev/nvme0n1');
    assert.equal(partition.parent, 'nvme0n1');
  });

  test('follows a /dev symlink such as a udev mapping name to the kernel device', async (t) => {
    const fixture = await buildHostTree(
      [{ name: 'nvme1n1', majorMinor: '259:2' }],
      mountLine(20, '0:1', '/', 'overlay'),
    );
    t.after(fixture.cleanup);
    await symlink('nvme1n1', path.join(fixture.host.dev, 'xvdb'));

    const device = await getBlockDevice(fixture.host, '/dev/xvdb');

    assert.equal(device.name, 'nvme1n1');
  });

  test('says a missing device is missing, with exit code 3', async (t) => {
    const fixture = await buildHostTree([], mountLine(20, '0:1', '/', 'overlay'));
    t.after(fixture.cleanup);

    await assert.rejects(getBlockDevice(fixture.host, '/dev/xvdz'), {
      message: '/dev/xvdz: no such device',
      exitCode: 3,
    });
  });
});
