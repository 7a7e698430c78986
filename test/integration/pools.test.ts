/**
 * volume.devices with volume.raid, and the nodeadm guard, on real loop devices. This machine's
 * kernel has no md driver, so an array is never actually built here: these tests cover the
 * decisions and refusals that come before mdadm --create, and the VM suite builds the arrays.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { createLoopDevice, type LoopDevice } from '../helpers/loop.js';
import { makeRig, mountedAt, probe, type Rig } from './rig.js';

async function hashDevice(devicePath: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(devicePath)) {
    hash.update(chunk as Buffer);
  }

  return hash.digest('hex');
}

/** A rig whose config pools its own device with a second loop device of the test's. */
async function makePoolRig(
  t: Parameters<typeof makeRig>[0],
  level: 'raid0' | 'raid10',
  extra = '',
): Promise<{ rig: Rig; second: LoopDevice }> {
  const rig = await makeRig(t, { sizeBytes: 320 * 1024 * 1024 });
  const second = await createLoopDevice({
    sizeBytes: 320 * 1024 * 1024,
    dir: rig.dir,
    name: 'second.img',
  });
  rig.defer(() => second.detach());
  await rig.writeConfig(
    [
      'volume:',
      `  devices: [${rig.device.path}, ${second.path}]`,
      `  raid: ${level}`,
      `  mountPoint: ${rig.mountPoint}`,
      '  waitSeconds: 0',
      extra,
      'containerd:',
      `  socket: ${path.join(rig.dir, 'no-containerd.sock')}`,
      '',
    ].join('\n'),
  );
  return { rig, second };
}

describe('pooled devices (volume.devices with volume.raid)', () => {
  test('a dry run plans the array on blank members and changes nothing', async (t) => {
    const { rig, second } = await makePoolRig(t, 'raid0');
    await writeFile(path.join(rig.mountPoint, 'cached'), 'pause image');
    const before = [await hashDevice(rig.device.path), await hashDevice(second.path)];

    const result = await rig.setup('--dry-run');

    assert.equal(result.exitCode, 0, result.stderr);
    const members = [rig.device.path, second.path].map((member) => path.basename(member));
    assert.match(
      result.stdout,
      new RegExp(
        `1\\. create raid0 /dev/md/ctrvol from ${members.join(', ')} \\(2 blank members and ` +
          'no array anywhere\\)',
      ),
    );
    assert.match(result.stdout, /format \/dev\/md\/ctrvol \(blank\) as xfs/);
    assert.match(result.stdout, /mount \/dev\/md\/ctrvol at /);
    assert.deepEqual([await hashDevice(rig.device.path), await hashDevice(second.path)], before);
    assert.equal(existsSync(path.join(rig.root, 'etc/mdadm.conf')), false);
    assert.equal(existsSync(path.join(rig.root, 'var')), false);
  });

  test('refuses a member that carries a filesystem, with exit 3, before any mdadm write', async (t) => {
    const { rig, second } = await makePoolRig(t, 'raid0');
    await execa('mkfs.ext4', ['-q', '-L', 'data', second.path]);
    const before = [await hashDevice(rig.device.path), await hashDevice(second.path)];

    const result = await rig.setup();

    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `${second.path} carries ext4 labelled "data"; ctrvol builds arrays only from blank devices`,
      ),
    );
    assert.deepEqual([await hashDevice(rig.device.path), await hashDevice(second.path)], before);
    assert.equal((await probe(second.path)).LABEL, 'data');
    assert.equal(await mountedAt(rig.mountPoint), undefined);
  });

  test('refuses raid10 on two devices, naming them', async (t) => {
    const { rig, second } = await makePoolRig(t, 'raid10');

    const result = await rig.setup();

    assert.equal(result.exitCode, 3, result.stderr);
    const names = [rig.device.path, second.path].map((member) => path.basename(member));
    assert.match(
      result.stderr,
      new RegExp(`raid10 needs at least 4 disks; there are 2: ${names.join(', ')}`),
    );
  });

  test('refuses the same device named twice in the config check, with exit 2', async (t) => {
    const { rig } = await makePoolRig(t, 'raid0');
    await rig.writeConfig(
      [
        'volume:',
        `  devices: [${rig.device.path}, ${rig.device.path}]`,
        '  raid: raid0',
        `  mountPoint: ${rig.mountPoint}`,
        '  waitSeconds: 0',
        '',
      ].join('\n'),
    );

    const result = await rig.setup();

    assert.equal(result.exitCode, 2, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `volume.devices.1: got "${rig.device.path}"; allowed: a device not already listed`,
      ),
    );
  });
});

describe('the nodeadm guard', () => {
  const nodeConfig = [
    'apiVersion: node.eks.aws/v1alpha1',
    'kind: NodeConfig',
    'spec:',
    '  instance:',
    '    localStorage:',
    '      strategy: RAID0',
    '',
  ].join('\n');

  test('refuses with exit 3 when a NodeConfig drop-in also claims the instance store', async (t) => {
    const rig = await makeRig(t);
    await rig.writeConfig(
      [
        'volume:',
        '  instanceStore: raid0',
        `  mountPoint: ${rig.mountPoint}`,
        '  waitSeconds: 0',
        '',
      ].join('\n'),
    );
    const dropIn = path.join(rig.root, 'etc/eks/nodeadm.d/10-disks.yaml');
    await mkdir(path.dirname(dropIn), { recursive: true });
    await writeFile(dropIn, nodeConfig);

    const result = await rig.setup();

    assert.equal(result.exitCode, 3, result.stderr);
    const lines = result.stderr.trim().split('\n');
    assert.ok(
      lines.some((line) =>
        line.includes(
          `ctrvol: resolve: ${dropIn} holds a NodeConfig with spec.instance.localStorage (strategy ` +
            'RAID0), and ctrvol is configured for the same storage: both would build an array ' +
            'from the instance-store disks',
        ),
      ),
      result.stderr,
    );
    assert.match(result.stderr, /drop instanceStorePolicy from the EC2NodeClass/);
    assert.equal(existsSync(path.join(rig.root, 'var/lib/ctrvol/state.json')), false);
  });

  test("goes ahead when nodeadm's localStorage leaves ctrvol's directories alone", async (t) => {
    const rig = await makeRig(t);
    const userData = path.join(rig.root, 'var/lib/cloud/instance/user-data.txt');
    await mkdir(path.dirname(userData), { recursive: true });
    await writeFile(userData, nodeConfig);

    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
  });
});
