/**
 * ensureArray between the planner and mdadm: which commands run, in which order, and what it
 * writes to mdadm's config and the run's record. mdadm is a recording fake answering with output
 * recorded from real arrays; the arrays themselves are built in the VM suite.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { Disk } from '../../agent/disks/inventory.js';
import { ensureArray } from '../../agent/setup/array.js';
import type { SetupContext } from '../../agent/setup/context.js';
import { makeTempDir } from '../helpers/temp.js';
import { makeContext, recordingRunner } from './fixtures/context.js';

const recordedDir = path.join(import.meta.dirname, 'fixtures/shapes/mdadm');
const recorded = (name: string) => readFileSync(path.join(recordedDir, name), 'utf8');
const newUuid = '5e2b7d1c:8a4f3e60:b1c2d3e4:f5a6b7c8';
const staleLine =
  'ARRAY /dev/md/ctrvol metadata=1.2 name=any:ctrvol UUID=11aa22bb:33cc44dd:55ee66ff:77008811';

const diskBytes = 4 * 1024 * 1024;
const disk = (name: string) =>
  ({ name, path: `/dev/${name}`, partitions: [], sizeBytes: diskBytes }) as unknown as Disk;
const members = [disk('nvme1n1'), disk('nvme2n1')];
const blankMember = (name: string) => ({
  [`mdadm --examine --export /dev/${name}`]: {
    exitCode: 1,
    stderr: `mdadm: No md superblock detected on /dev/${name}.\n`,
  },
  [`blkid -p -o export /dev/${name}`]: { exitCode: 2 },
  [`wipefs --no-act --json /dev/${name}`]: {},
});
const createRaid0 =
  'mdadm --create /dev/md/ctrvol --run --metadata=1.2 --level=0 --chunk=256 --name=ctrvol ' +
  '--homehost=any --raid-devices=2 /dev/nvme1n1 /dev/nvme2n1';

/** ensureArray on the two members as raid0, the pool every test here plans. */
const ensureRaid0 = (context: SetupContext) =>
  ensureArray(context, context.logger, { kind: 'array', level: 'raid0', members });

async function makeRoot(t: { after(fn: () => Promise<void>): void }) {
  const temp = await makeTempDir('ctrvol-array');
  t.after(() => temp.cleanup());
  const proc = path.join(temp.path, 'proc');
  const dev = path.join(temp.path, 'dev');
  await mkdir(proc);
  await mkdir(dev);
  // The members' content is sampled to tell a blank disk from data without a signature: sparse
  // files read as the zeros of a new volume.
  for (const member of members) {
    await writeFile(path.join(dev, member.name), '');
    await truncate(path.join(dev, member.name), diskBytes);
  }

  return { root: path.join(temp.path, 'root'), host: { sys: proc, dev, proc } };
}

describe('ensureArray', () => {
  test('rebuilds over blank members when an old array is remembered, and fixes the config', async (t) => {
    const { root, host } = await makeRoot(t);
    const amazonConf = path.join(root, 'etc/mdadm.conf');
    await mkdir(path.dirname(amazonConf), { recursive: true });
    await writeFile(amazonConf, `# kept\n${staleLine}\n`);
    const run = recordingRunner({
      ...blankMember('nvme1n1'),
      ...blankMember('nvme2n1'),
      [createRaid0]: {},
      'udevadm settle --timeout=30': {},
      'mdadm --detail --export /dev/md/ctrvol': { stdout: recorded('detail-raid0-md127.txt') },
    });
    const { context, lines } = makeContext({
      host,
      root,
      configYaml: 'volume: {instanceStore: raid0}',
      run,
    });

    const outcome = await ensureRaid0(context);

    assert.equal(outcome.plan.action, 'rebuild');
    assert.equal(outcome.device, '/dev/md/ctrvol');
    assert.deepEqual(
      run.calls.filter((call) => !call.startsWith('blkid') && !call.startsWith('wipefs')),
      [
        'mdadm --examine --export /dev/nvme1n1',
        'mdadm --examine --export /dev/nvme2n1',
        createRaid0,
        'udevadm settle --timeout=30',
        'mdadm --detail --export /dev/md/ctrvol',
      ],
    );
    assert.equal(
      await readFile(amazonConf, 'utf8'),
      `# kept\nARRAY /dev/md/ctrvol metadata=1.2 name=any:ctrvol UUID=${newUuid}\n`,
    );
    assert.deepEqual(context.array, {
      uuid: newUuid,
      level: 'raid0',
      members: ['nvme1n1', 'nvme2n1'],
    });
    assert.ok(
      lines.some((line) => line.includes('rebuild raid0 /dev/md/ctrvol from nvme1n1, nvme2n1')),
    );
  });

  test('uses an array the kernel assembled as md127, running no mdadm that writes', async (t) => {
    const { root, host } = await makeRoot(t);
    await writeFile(path.join(host.proc, 'mdstat'), recorded('mdstat-raid0-md127.txt'));
    // Debian keeps mdadm.conf in its own folder; with no file yet, that is where the line goes.
    await mkdir(path.join(root, 'etc/mdadm'), { recursive: true });
    const detail = { stdout: recorded('detail-raid0-md127.txt') };
    const run = recordingRunner({
      'mdadm --detail --export /dev/md127': detail,
      'mdadm --examine --export /dev/nvme1n1': { stdout: recorded('examine-raid0-nvme1n1.txt') },
      'mdadm --examine --export /dev/nvme2n1': { stdout: recorded('examine-raid0-nvme2n1.txt') },
      'blkid -p -o export /dev/nvme1n1': { stdout: 'TYPE=linux_raid_member\n' },
      'blkid -p -o export /dev/nvme2n1': { stdout: 'TYPE=linux_raid_member\n' },
      'wipefs --no-act --json /dev/nvme1n1': {},
      'wipefs --no-act --json /dev/nvme2n1': {},
    });
    const { context } = makeContext({
      host,
      root,
      configYaml: 'volume: {instanceStore: raid0}',
      run,
    });

    const outcome = await ensureRaid0(context);

    assert.equal(outcome.plan.action, 'use');
    assert.equal(outcome.device, '/dev/md127');
    assert.ok(!run.calls.some((call) => /--create|--assemble|--stop|udevadm/.test(call)));
    assert.equal(
      await readFile(path.join(root, 'etc/mdadm/mdadm.conf'), 'utf8'),
      `ARRAY /dev/md/ctrvol metadata=1.2 name=any:ctrvol UUID=${newUuid}\n`,
    );
  });

  test('a dry run plans the create and neither runs mdadm --create nor writes a config', async (t) => {
    const { root, host } = await makeRoot(t);
    const run = recordingRunner({ ...blankMember('nvme1n1'), ...blankMember('nvme2n1') });
    const { context } = makeContext({
      host,
      root,
      configYaml: 'volume: {instanceStore: raid0}',
      run,
    });
    context.dryRun = true;

    const outcome = await ensureRaid0(context);

    assert.equal(outcome.plan.action, 'create');
    assert.equal(outcome.device, undefined);
    assert.deepEqual(context.plan, [
      'create raid0 /dev/md/ctrvol from nvme1n1, nvme2n1 (2 blank members and no array anywhere)',
    ]);
    assert.equal(context.array, undefined);
    await assert.rejects(readFile(path.join(root, 'etc/mdadm.conf')), { code: 'ENOENT' });
  });
});
