import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { Disk } from '../../agent/disks/inventory.js';
import {
  buildCreateArgs,
  isArrayName,
  parseDetailExport,
  parseExamineExport,
  parseMdadmConf,
  parseMdstat,
  planArray,
  removeConfigArrays,
  renderConfigLine,
  type ArrayFacts,
  type ArrayPlan,
  type MemberFacts,
} from '../../agent/disks/md.js';
import { gatherArrayFacts } from '../../agent/disks/md-facts.js';
import { recordingRunner } from './fixtures/context.js';

const recordedDir = path.join(import.meta.dirname, 'fixtures/shapes/mdadm');

/** A recorded mdadm or /proc/mdstat output. */
function recorded(name: string): string {
  return readFileSync(path.join(recordedDir, name), 'utf8');
}

const raid0Uuid = '5e2b7d1c:8a4f3e60:b1c2d3e4:f5a6b7c8';
const raid10Uuid = '9d3c41e7:22b0f5a8:6e1d7c93:40a8b2f1';
const staleUuid = '11aa22bb:33cc44dd:55ee66ff:77008811';

function blankMembers(count: number): MemberFacts[] {
  return Array.from({ length: count }, (_, i) => ({
    path: `/dev/nvme${i + 1}n1`,
    examine: undefined,
    blank: true,
  }));
}

function examined(level: 'raid0' | 'raid10', count: number): MemberFacts[] {
  return blankMembers(count).map((member, i) => ({
    ...member,
    examine: recorded(`examine-${level}-nvme${i + 1}n1.txt`),
    blank: false,
  }));
}

function facts(overrides: Partial<ArrayFacts>): ArrayFacts {
  return {
    level: 'raid0',
    members: blankMembers(2),
    mdstat: undefined,
    details: {},
    configs: {},
    ...overrides,
  };
}

describe('the mdadm command lines', () => {
  test('raid0 is created named for ctrvol, metadata 1.2, 256 KiB chunks, on any host', () => {
    assert.deepEqual(
      buildCreateArgs({ level: 'raid0', members: ['/dev/nvme1n1', '/dev/nvme2n1'] }),
      [
        '--create',
        '/dev/md/ctrvol',
        '--run',
        '--metadata=1.2',
        '--level=0',
        '--chunk=256',
        '--name=ctrvol',
        '--homehost=any',
        '--raid-devices=2',
        '/dev/nvme1n1',
        '/dev/nvme2n1',
      ],
    );
  });

  test('raid10 adds near-2 layout, an internal bitmap and --assume-clean', () => {
    const members = ['/dev/nvme1n1', '/dev/nvme2n1', '/dev/nvme3n1', '/dev/nvme4n1'];

    assert.deepEqual(buildCreateArgs({ level: 'raid10', members }), [
      '--create',
      '/dev/md/ctrvol',
      '--run',
      '--metadata=1.2',
      '--level=10',
      '--chunk=256',
      '--layout=n2',
      '--bitmap=internal',
      '--assume-clean',
      '--name=ctrvol',
      '--homehost=any',
      '--raid-devices=4',
      ...members,
    ]);
  });

  test('the config line is what mdadm --detail --brief prints', () => {
    const detail = parseDetailExport(recorded('detail-raid0-md127.txt'));
    assert.ok(detail !== undefined);

    assert.equal(
      renderConfigLine(detail),
      `ARRAY /dev/md/ctrvol metadata=1.2 name=any:ctrvol UUID=${raid0Uuid}`,
    );
  });
});

describe('reading /proc/mdstat', () => {
  test('reads a raid0 assembled as md127 with its lower-case chunk size', () => {
    const { personalities, arrays } = parseMdstat(recorded('mdstat-raid0-md127.txt'));

    assert.deepEqual(personalities, ['raid0']);
    assert.equal(arrays.length, 1);
    assert.deepEqual(arrays[0], {
      name: 'md127',
      active: true,
      readOnly: false,
      level: 'raid0',
      members: [
        { name: 'nvme2n1', slot: 1, faulty: false, spare: false },
        { name: 'nvme1n1', slot: 0, faulty: false, spare: false },
      ],
      blocks: 7323985920,
      metadata: '1.2',
      chunkKiB: 256,
      raidDisks: undefined,
      workingDisks: undefined,
      sync: undefined,
    });
  });

  const cases: [string, string, Partial<ReturnType<typeof parseMdstat>['arrays'][number]>][] = [
    [
      'an auto-read-only raid10 fresh from assembly',
      'mdstat-raid10-md127.txt',
      { readOnly: true, level: 'raid10', chunkKiB: 256, raidDisks: 4, workingDisks: 4 },
    ],
    [
      'a degraded raid10',
      'mdstat-raid10-degraded.txt',
      { active: true, raidDisks: 4, workingDisks: 3 },
    ],
    [
      'a raid10 resyncing after a crash',
      'mdstat-raid10-resync.txt',
      { sync: { action: 'resync', percent: 21.4 } },
    ],
    [
      'an inactive partial assembly, whose level is not known yet',
      'mdstat-inactive.txt',
      { active: false, level: undefined, blocks: 3662109352, chunkKiB: undefined },
    ],
  ];

  for (const [name, file, expected] of cases) {
    test(`reads ${name}`, () => {
      const [array] = parseMdstat(recorded(file)).arrays;

      assert.ok(array !== undefined);
      for (const [key, value] of Object.entries(expected)) {
        assert.deepEqual(array[key as keyof typeof array], value, key);
      }
    });
  }

  test('reads a spare flag and several arrays, and nothing from an empty mdstat', () => {
    assert.deepEqual(parseMdstat(recorded('mdstat-inactive.txt')).arrays[0]?.members, [
      { name: 'nvme1n1', slot: 0, faulty: false, spare: true },
    ]);
    assert.deepEqual(
      parseMdstat(recorded('mdstat-two-arrays.txt')).arrays.map((array) => array.name),
      ['md126', 'md0'],
    );
    assert.deepEqual(parseMdstat(recorded('mdstat-empty.txt')).arrays, []);
  });
});

describe('reading mdadm --export output and mdadm.conf', () => {
  test('reads --detail --export members in role order, whatever the mdadm version calls them', () => {
    const current = parseDetailExport(recorded('detail-raid0-md127.txt'));
    const older = parseDetailExport(recorded('detail-raid10-md127-old-mdadm.txt'));

    assert.equal(current?.uuid, raid0Uuid);
    assert.equal(current?.name, 'any:ctrvol');
    assert.equal(current?.devname, 'ctrvol');
    assert.deepEqual(current?.members, [
      { path: '/dev/nvme1n1', role: 0 },
      { path: '/dev/nvme2n1', role: 1 },
    ]);
    assert.deepEqual(
      older?.members.map((member) => member.path),
      ['/dev/nvme1n1', '/dev/nvme2n1', '/dev/nvme3n1', '/dev/nvme4n1'],
    );
    assert.deepEqual(parseDetailExport(recorded('detail-inactive-md127.txt'))?.members, [
      { path: '/dev/nvme1n1', role: 'spare' },
    ]);
  });

  test('reads a member superblock, and no superblock from empty output', () => {
    assert.deepEqual(parseExamineExport(recorded('examine-raid10-nvme3n1.txt')), {
      level: 'raid10',
      raidDevices: 4,
      name: 'any:ctrvol',
      uuid: raid10Uuid,
      deviceUuid: '7a2e91c4:0f3b6d58:e4c1a927:b36d05f3',
      events: 41,
      updateTime: 1754384400,
    });
    assert.equal(parseExamineExport(''), undefined);
    assert.equal(parseExamineExport(undefined), undefined);
  });

  test('reads ARRAY lines with continuation lines and comments', () => {
    const arrays = parseMdadmConf(recorded('mdadm-conf-debian.txt'));

    assert.deepEqual(
      arrays.map(({ device, uuid, name }) => ({ device, uuid, name })),
      [
        {
          device: '/dev/md/0',
          uuid: '0c6f1b2a:4d5e6f70:81920a3b:4c5d6e7f',
          name: 'ip-10-1-2-3:0',
        },
        { device: '/dev/md/ctrvol', uuid: staleUuid, name: 'any:ctrvol' },
      ],
    );
  });

  test('drops a stale ctrvol entry with its continuation line and keeps everything else', () => {
    const text = recorded('mdadm-conf-debian.txt');
    const stale = parseMdadmConf(text).filter((array) => isArrayName(array.name));

    const kept = removeConfigArrays(text, stale);

    assert.doesNotMatch(kept, /ctrvol/);
    assert.match(kept, /^ARRAY \/dev\/md\/0 {2}metadata=1\.2/m);
    assert.match(kept, /^MAILADDR root$/m);
    assert.equal(kept.split('\n').length, text.split('\n').length - 2);
  });

  const names: [string | undefined, boolean][] = [
    ['ctrvol', true],
    ['any:ctrvol', true],
    ['ip-10-0-0-1:ctrvol', true],
    ['any:ctrvol2', false],
    ['ctrvol:data', false],
    [undefined, false],
  ];
  for (const [name, ours] of names) {
    test(`${ours ? 'recognises' : 'does not take'} the superblock name ${name} as ctrvol's`, () => {
      assert.equal(isArrayName(name), ours);
    });
  }
});

describe('deciding what to do about the array', () => {
  const plans: [string, Partial<ArrayFacts>, Partial<ArrayPlan>][] = [
    [
      'creates it on blank members when the md driver is not even loaded',
      {},
      {
        action: 'create',
        device: '/dev/md/ctrvol',
        commands: [buildCreateArgs({ level: 'raid0', members: ['/dev/nvme1n1', '/dev/nvme2n1'] })],
        staleConfig: [],
      },
    ],
    [
      'creates raid10 on four blank members when mdstat lists no array',
      { level: 'raid10', members: blankMembers(4), mdstat: recorded('mdstat-empty.txt') },
      { action: 'create' },
    ],
    [
      'uses the array that came back after a reboot as md127, by its name',
      {
        mdstat: recorded('mdstat-raid0-md127.txt'),
        details: { '/dev/md127': recorded('detail-raid0-md127.txt') },
        members: examined('raid0', 2),
      },
      { action: 'use', device: '/dev/md127', uuid: raid0Uuid, commands: [], warnings: [] },
    ],
    [
      'uses a raid10 described in an older mdadm’s export format',
      {
        level: 'raid10',
        mdstat: recorded('mdstat-raid10-md127.txt'),
        details: { '/dev/md127': recorded('detail-raid10-md127-old-mdadm.txt') },
        members: examined('raid10', 4),
      },
      { action: 'use', device: '/dev/md127', uuid: raid10Uuid, warnings: [] },
    ],
    [
      'prefers the array with the UUID ctrvol recorded over another named ctrvol',
      {
        members: [
          { path: '/dev/nvme3n1', examine: undefined, blank: false },
          { path: '/dev/nvme4n1', examine: undefined, blank: false },
        ],
        mdstat: recorded('mdstat-renamed-md0.txt'),
        details: {
          '/dev/md126': recorded('detail-raid0-md126.txt'),
          '/dev/md0': recorded('detail-renamed-md0.txt'),
        },
        recordedUuid: '6A7B8C9D:0E1F2A3B:4C5D6E7F:8091A2B3',
      },
      { action: 'use', device: '/dev/md0', uuid: '6a7b8c9d:0e1f2a3b:4c5d6e7f:8091a2b3' },
    ],
    [
      'uses a degraded raid10 and says which member is missing',
      {
        level: 'raid10',
        mdstat: recorded('mdstat-raid10-degraded.txt'),
        details: { '/dev/md127': recorded('detail-raid10-md127-old-mdadm.txt') },
        members: examined('raid10', 4),
      },
      {
        action: 'use',
        warnings: ['/dev/md127 is degraded (3 of 4 devices working; not in it: nvme3n1)'],
      },
    ],
    [
      'uses a resyncing raid10 and says so',
      {
        level: 'raid10',
        mdstat: recorded('mdstat-raid10-resync.txt'),
        details: { '/dev/md127': recorded('detail-raid10-md127-old-mdadm.txt') },
        members: examined('raid10', 4),
      },
      { action: 'use', warnings: ['/dev/md127 is in resync at 21.4%'] },
    ],
    [
      'assembles it when every member carries its superblock and nothing is assembled',
      { mdstat: recorded('mdstat-empty.txt'), members: examined('raid0', 2) },
      {
        action: 'assemble',
        uuid: raid0Uuid,
        commands: [
          ['--assemble', '/dev/md/ctrvol', `--uuid=${raid0Uuid}`, '/dev/nvme1n1', '/dev/nvme2n1'],
        ],
      },
    ],
    [
      'stops a partial assembly left inactive at boot before assembling',
      {
        mdstat: recorded('mdstat-inactive.txt'),
        details: { '/dev/md127': recorded('detail-inactive-md127.txt') },
        members: examined('raid0', 2),
      },
      {
        action: 'assemble',
        commands: [
          ['--stop', '/dev/md127'],
          ['--assemble', '/dev/md/ctrvol', `--uuid=${raid0Uuid}`, '/dev/nvme1n1', '/dev/nvme2n1'],
        ],
      },
    ],
    [
      'rebuilds on blank members that an old mdadm.conf still names (a stop and start)',
      { configs: { '/.aws/mdadm.conf': recorded('mdadm-conf-eks-stale.txt') } },
      {
        action: 'rebuild',
        staleConfig: [
          {
            file: '/.aws/mdadm.conf',
            arrays: parseMdadmConf(recorded('mdadm-conf-eks-stale.txt')),
          },
        ],
        commands: [buildCreateArgs({ level: 'raid0', members: ['/dev/nvme1n1', '/dev/nvme2n1'] })],
      },
    ],
    [
      'rebuilds on blank members when ctrvol recorded an array',
      { recordedUuid: raid0Uuid, configs: { '/etc/mdadm.conf': undefined } },
      { action: 'rebuild', staleConfig: [] },
    ],
    [
      'keeps using the running array and reports the config line naming an older one',
      {
        mdstat: recorded('mdstat-raid0-md127.txt'),
        details: { '/dev/md127': recorded('detail-raid0-md127.txt') },
        members: examined('raid0', 2),
        configs: { '/etc/mdadm/mdadm.conf': recorded('mdadm-conf-debian.txt') },
      },
      {
        action: 'use',
        staleConfig: [
          {
            file: '/etc/mdadm/mdadm.conf',
            arrays: parseMdadmConf(recorded('mdadm-conf-debian.txt')).filter(
              (array) => array.uuid === staleUuid,
            ),
          },
        ],
      },
    ],
  ];

  for (const [name, input, expected] of plans) {
    test(name, () => {
      const plan = planArray(facts(input));

      for (const [key, value] of Object.entries(expected)) {
        assert.deepEqual(plan[key as keyof ArrayPlan], value, key);
      }
    });
  }

  const refusals: [string, Partial<ArrayFacts>, RegExp][] = [
    [
      'a member held by someone else’s running array',
      {
        members: [
          { path: '/dev/nvme3n1', examine: recorded('examine-foreign.txt'), blank: false },
          { path: '/dev/nvme4n1', examine: recorded('examine-foreign.txt'), blank: false },
        ],
        mdstat: recorded('mdstat-two-arrays.txt'),
        details: {
          '/dev/md126': recorded('detail-raid0-md126.txt'),
          '/dev/md0': recorded('detail-foreign-md0.txt'),
        },
      },
      /^nvme3n1, nvme4n1 belongs to \/dev\/md0 \(name ip-10-1-2-3:scratch, UUID 0c6f1b2a:/,
    ],
    [
      'a member carrying another array’s superblock',
      {
        members: [
          { path: '/dev/nvme1n1', examine: recorded('examine-foreign.txt'), blank: false },
          ...blankMembers(2).slice(1),
        ],
      },
      /^\/dev\/nvme1n1 is a member of another array \(name ip-10-1-2-3:scratch/,
    ],
    [
      'members of two different ctrvol arrays',
      {
        members: [
          { path: '/dev/nvme1n1', examine: recorded('examine-raid0-nvme1n1.txt'), blank: false },
          { path: '/dev/nvme2n1', examine: recorded('examine-other-ctrvol.txt'), blank: false },
        ],
      },
      /superblocks of 2 different arrays named ctrvol: \/dev\/nvme1n1 5e2b7d1c.*\/dev\/nvme2n1 11aa22bb/,
    ],
    [
      'an array built from another number of devices than are selected',
      {
        level: 'raid10',
        members: [
          ...examined('raid0', 2),
          { path: '/dev/nvme3n1', examine: recorded('examine-raid0-nvme1n1.txt'), blank: false },
          { path: '/dev/nvme4n1', examine: recorded('examine-raid0-nvme2n1.txt'), blank: false },
        ],
      },
      /was built from 2 devices, and 4 are selected/,
    ],
    [
      'an array of another level than configured',
      { level: 'raid10', members: examined('raid0', 2) },
      /on these devices is raid0, and raid10 is configured/,
    ],
    [
      'some members in ctrvol’s array and others blank',
      { members: [...examined('raid0', 1), ...blankMembers(2).slice(1)] },
      /^\/dev\/nvme1n1 carry ctrvol's array 5e2b7d1c:.*, but \/dev\/nvme2n1 do not/,
    ],
    [
      'a member that is not blank and has no superblock',
      {
        members: [
          ...blankMembers(1),
          { path: '/dev/nvme2n1', examine: undefined, blank: false, signatures: 'xfs "data"' },
        ],
      },
      /^\/dev\/nvme2n1 carries xfs "data"; ctrvol builds arrays only from blank devices/,
    ],
    [
      'a running ctrvol array that holds a device the configuration does not select',
      {
        members: examined('raid0', 1),
        mdstat: recorded('mdstat-raid0-md127.txt'),
        details: { '/dev/md127': recorded('detail-raid0-md127.txt') },
      },
      /^\/dev\/md127 \(ctrvol's array\) holds nvme2n1, which the configuration does not select/,
    ],
    [
      'a running ctrvol array of another level than configured',
      {
        level: 'raid10',
        members: examined('raid0', 2),
        mdstat: recorded('mdstat-raid0-md127.txt'),
        details: { '/dev/md127': recorded('detail-raid0-md127.txt') },
      },
      /^\/dev\/md127 \(ctrvol's array\) is raid0, and raid10 is configured/,
    ],
    [
      'two arrays named ctrvol assembled at once',
      {
        members: examined('raid0', 2),
        mdstat: recorded('mdstat-two-arrays.txt'),
        details: {
          '/dev/md126': recorded('detail-raid0-md126.txt'),
          '/dev/md0': recorded('detail-raid0-md127.txt'),
        },
      },
      /^2 arrays named ctrvol are assembled: \/dev\/md126, \/dev\/md0/,
    ],
  ];

  for (const [name, input, message] of refusals) {
    test(`refuses ${name}, with exit code 3`, () => {
      assert.throws(() => planArray(facts(input)), { exitCode: 3, message });
    });
  }
});

describe('gathering what the planner reads', () => {
  const disk = (name: string) => ({ name, path: `/dev/${name}` }) as Disk;

  test('reads mdstat, details of listed arrays, member superblocks and config files', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ctrvol-md-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(path.join(dir, 'mdstat'), recorded('mdstat-inactive.txt'));
    await writeFile(path.join(dir, 'mdadm.conf'), recorded('mdadm-conf-eks-stale.txt'));
    const run = recordingRunner({
      'mdadm --detail --export /dev/md127': { stdout: recorded('detail-inactive-md127.txt') },
      'mdadm --examine --export /dev/nvme1n1': { stdout: recorded('examine-raid0-nvme1n1.txt') },
      'mdadm --examine --export /dev/nvme2n1': {
        exitCode: 1,
        stderr: 'mdadm: No md superblock detected on /dev/nvme2n1.\n',
      },
    });

    const gathered = await gatherArrayFacts({
      run,
      host: { sys: dir, dev: dir, proc: dir },
      level: 'raid0',
      members: [disk('nvme1n1'), disk('nvme2n1')],
      describeMember: async (member) => ({ blank: member.name === 'nvme2n1' }),
      configFiles: [path.join(dir, 'mdadm.conf'), path.join(dir, 'absent.conf')],
    });

    assert.deepEqual(Object.keys(gathered.details), ['/dev/md127']);
    assert.equal(gathered.members[0]?.examine, recorded('examine-raid0-nvme1n1.txt'));
    assert.deepEqual(gathered.members[1], {
      path: '/dev/nvme2n1',
      examine: undefined,
      blank: true,
    });
    assert.equal(gathered.configs[path.join(dir, 'absent.conf')], undefined);
    assert.throws(() => planArray(gathered), /carry ctrvol's array .* but \/dev\/nvme2n1 do not/);
  });

  test('takes a missing /proc/mdstat as no arrays, and stops on an examine that failed', async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ctrvol-md-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const run = recordingRunner({
      'mdadm --examine --export /dev/nvme1n1': {
        exitCode: 1,
        stderr: 'mdadm: cannot open /dev/nvme1n1: Permission denied\n',
      },
    });

    await assert.rejects(
      gatherArrayFacts({
        run,
        host: { sys: dir, dev: dir, proc: dir },
        level: 'raid0',
        members: [disk('nvme1n1')],
        describeMember: async () => ({ blank: true }),
        configFiles: [],
      }),
      { exitCode: 3, message: /mdadm --examine \/dev\/nvme1n1 failed: .*Permission denied/ },
    );
    assert.deepEqual(run.calls, ['mdadm --examine --export /dev/nvme1n1']);
  });
});
