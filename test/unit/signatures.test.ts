import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isBlank, parseExport, parseWipefs, type Signatures } from '../../agent/host/signatures.js';

const none: Signatures = {
  fsType: undefined,
  uuid: undefined,
  label: undefined,
  partitionTable: undefined,
  all: [],
};

describe('what counts as blank', () => {
  const cases: [string, Signatures, number, boolean][] = [
    ['zeros', none, 0, true],
    [
      'an atari table of noise with no partitions',
      { ...none, partitionTable: 'atari', all: ['atari'] },
      0,
      true,
    ],
    [
      'an atari table the kernel made partitions of',
      { ...none, partitionTable: 'atari', all: ['atari'] },
      1,
      false,
    ],
    ['a dos table', { ...none, partitionTable: 'dos', all: ['dos'] }, 0, false],
    ['an xfs filesystem', { ...none, fsType: 'xfs', uuid: 'u', all: ['xfs'] }, 0, false],
    ['an LVM member', { ...none, fsType: 'LVM2_member', all: ['LVM2_member'] }, 0, false],
    [
      'atari beside a real signature',
      { ...none, partitionTable: 'atari', all: ['atari', 'swap'] },
      0,
      false,
    ],
  ];

  for (const [name, signatures, partitions, blank] of cases) {
    test(`${blank ? 'treats' : 'does not treat'} ${name} as blank`, () => {
      assert.equal(isBlank(signatures, partitions), blank);
    });
  }
});

describe('parsing blkid and wipefs output', () => {
  test('reads blkid export lines, undoing its backslash escapes', () => {
    const fields = parseExport('DEVNAME=/dev/loop0\nLABEL=my\\ disk\nUUID=abc\nTYPE=xfs\n');

    assert.deepEqual(fields, { DEVNAME: '/dev/loop0', LABEL: 'my disk', UUID: 'abc', TYPE: 'xfs' });
  });

  test('reads every signature type from wipefs --json, and nothing from empty output', () => {
    const json = JSON.stringify({
      signatures: [
        { device: 'loop0', offset: '0x0', type: 'atari' },
        { device: 'loop0', offset: '0x438', type: 'ext4' },
      ],
    });

    assert.deepEqual(parseWipefs(json), ['atari', 'ext4']);
    assert.deepEqual(parseWipefs(''), []);
    assert.deepEqual(parseWipefs('{"signatures": []}'), []);
  });
});
