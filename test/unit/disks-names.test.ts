import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  compareDeviceNames,
  getPartitionName,
  getXenNodeName,
  isMappingName,
  normalizeMappingName,
  parseVolumeId,
  splitPartitionName,
} from '../../agent/disks/names.js';

describe('partition names', () => {
  const cases: [string, number, string][] = [
    ['nvme0n1', 1, 'nvme0n1p1'],
    ['nvme12n1', 128, 'nvme12n1p128'],
    ['loop0', 1, 'loop0p1'],
    ['md127', 2, 'md127p2'],
    ['mmcblk0', 1, 'mmcblk0p1'],
    ['xvda', 1, 'xvda1'],
    ['sda', 3, 'sda3'],
    ['vda', 1, 'vda1'],
    ['xvdba', 2, 'xvdba2'],
  ];

  for (const [disk, number, partition] of cases) {
    test(`partition ${number} of ${disk} is ${partition}, and splits back`, () => {
      assert.equal(getPartitionName(disk, number), partition);
      assert.deepEqual(splitPartitionName(partition), { disk, number });
    });
  }

  for (const name of ['nvme0n1', 'loop0', 'md127', 'dm-0', 'xvda', 'sr0', 'zram0', 'mmcblk0']) {
    test(`${name} is not read as a partition`, () => {
      assert.equal(splitPartitionName(name), undefined);
    });
  }
});

describe('mapping names, volume ids and Xen names', () => {
  const mapping: [string, boolean][] = [
    ['xvdb', true],
    ['/dev/xvdb', true],
    ['sdf', true],
    ['/dev/sdf', true],
    ['xvdba', true],
    ['sda1', true],
    ['/dev/nvme1n1', false],
    ['nvme1n1', false],
    ['/dev/loop3', false],
    ['/dev/disk/by-id/xvdb', false],
    ['vdb', false],
  ];
  for (const [text, expected] of mapping) {
    test(`${text} ${expected ? 'is' : 'is not'} a mapping name`, () => {
      assert.equal(isMappingName(text), expected);
    });
  }

  test('mapping names are compared without /dev/ and surrounding space', () => {
    assert.equal(normalizeMappingName(' /dev/sdf '), 'sdf');
    assert.equal(normalizeMappingName('xvdb'), 'xvdb');
  });

  const volumes: [string, { volumeId: string; serial: string } | undefined][] = [
    [
      'vol-0123456789abcdef0',
      { volumeId: 'vol-0123456789abcdef0', serial: 'vol0123456789abcdef0' },
    ],
    ['vol0123456789abcdef0', { volumeId: 'vol-0123456789abcdef0', serial: 'vol0123456789abcdef0' }],
    ['vol-1a2b3c4d', { volumeId: 'vol-1a2b3c4d', serial: 'vol1a2b3c4d' }],
    ['vol-0123', undefined],
    ['vol-0123456789ABCDEF0', undefined],
    ['AWS1E4B1E2D3F40', undefined],
  ];
  for (const [text, expected] of volumes) {
    test(`${text} ${expected === undefined ? 'is not a volume id' : `is ${expected.volumeId}`}`, () => {
      assert.deepEqual(parseVolumeId(text), expected);
    });
  }

  test('Xen’s blkfront names the mapping sdf xvdf, and xvdb stays xvdb', () => {
    assert.equal(getXenNodeName('sdf'), 'xvdf');
    assert.equal(getXenNodeName('xvdb'), undefined);
  });

  test('device names sort as people count: nvme2n1 before nvme10n1', () => {
    assert.deepEqual(['nvme10n1', 'nvme2n1', 'nvme1n1', 'xvdba', 'xvdb'].sort(compareDeviceNames), [
      'nvme1n1',
      'nvme2n1',
      'nvme10n1',
      'xvdb',
      'xvdba',
    ]);
  });
});
