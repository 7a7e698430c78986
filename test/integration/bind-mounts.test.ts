import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, link, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { readMounts } from '../helpers/mounts.js';
import { diffManifests, treeManifest } from '../helpers/store.js';
import { makeRig, mountedAt, probe, type Rig } from './rig.js';

/**
 * volume.bindMounts on real loop devices. Every directory bound here lies in the test's own
 * temporary directory, standing in for /var/lib/kubelet and /var/log/pods.
 */

interface BindRig extends Rig {
  kubelet: string;
  pods: string;
  /** Rewrites the config's volume.bindMounts; an empty list takes the key out. */
  setBindMounts(directories: string[]): Promise<void>;
}

async function makeBindRig(
  t: { after(fn: () => Promise<void>): void },
  directories?: (rig: { kubelet: string; pods: string }) => string[],
): Promise<BindRig> {
  const rig = await makeRig(t);
  const kubelet = path.join(rig.dir, 'var/lib/kubelet');
  const pods = path.join(rig.dir, 'var/log/pods');
  const base = await readFile(rig.configFile, 'utf8');
  const setBindMounts = async (list: string[]) => {
    const line = list.length === 0 ? '' : `  bindMounts: [${list.join(', ')}]\n`;
    await rig.writeConfig(base.replace('containerd:\n', `${line}containerd:\n`));
  };
  await setBindMounts(directories?.({ kubelet, pods }) ?? [kubelet, pods]);
  return Object.assign(rig, { kubelet, pods, setBindMounts });
}

/** The folder inside the volume that is mounted at a directory now, if the loop device is. */
async function boundFrom(rig: Rig, directory: string): Promise<string | undefined> {
  const mount = (await readMounts()).findLast((entry) => entry.mountPoint === directory);
  return mount !== undefined && (await mountedAt(directory)) !== undefined
    ? `${mount.source}:${mount.root}`
    : undefined;
}

const ownFolder = (rig: Rig, directory: string) => `${rig.device.path}:/ctrvol-bind${directory}`;

/**
 * What a naive copy of a kubelet directory loses: odd modes and owners, xattrs in the user,
 * trusted and security namespaces, hard links, symlinks, a fifo and old timestamps.
 */
async function fillKubeletTree(dir: string): Promise<void> {
  const run = (file: string, args: string[]) => execa(file, args, { stdin: 'ignore' });
  await mkdir(path.join(dir, 'pods/1234/volumes'), { recursive: true });
  await mkdir(path.join(dir, 'pki'), { recursive: true });
  await writeFile(path.join(dir, 'pki/kubelet.key'), 'secret');
  await chmod(path.join(dir, 'pki/kubelet.key'), 0o600);
  await chmod(path.join(dir, 'pki'), 0o700);
  await writeFile(path.join(dir, 'config.json'), '{}');
  await run('chown', ['1234:5678', path.join(dir, 'config.json')]);
  await run('chmod', ['4751', path.join(dir, 'config.json')]);
  await run('setfattr', ['-n', 'user.origin', '-v', 'ami', path.join(dir, 'config.json')]);
  await run('setfattr', ['-n', 'trusted.kind', '-v', 'x', path.join(dir, 'pods')]);
  await writeFile(path.join(dir, 'plugin'), Buffer.alloc(4096, 5));
  await run('setcap', ['cap_net_raw+ep', path.join(dir, 'plugin')]);
  await link(path.join(dir, 'plugin'), path.join(dir, 'pods/1234/plugin-hardlink'));
  await symlink('../../../pki/kubelet.key', path.join(dir, 'pods/1234/volumes/key-link'));
  await run('mkfifo', [path.join(dir, 'pods/1234/fifo')]);
  await run('chown', ['-h', '42:42', path.join(dir, 'pods/1234/volumes/key-link')]);
  await run('touch', ['-d', '2003-04-05 06:07:08.123456789', path.join(dir, 'pods/1234')]);
  await run('chmod', ['0750', dir]);
}

async function fillPods(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'kube-system_coredns_1/coredns'), { recursive: true });
  await writeFile(path.join(dir, 'kube-system_coredns_1/coredns/0.log'), 'log line\n');
}

/** Unmounts what setup mounted, binds first, as a reboot would leave the machine. */
async function reboot(rig: BindRig): Promise<void> {
  for (const directory of [rig.pods, rig.kubelet, rig.mountPoint]) {
    while ((await mountedAt(directory)) !== undefined) {
      await execa('umount', [directory]);
    }
  }
}

const readState = async (rig: Rig) =>
  JSON.parse(await readFile(path.join(rig.root, 'var/lib/ctrvol/state.json'), 'utf8'));

const kubeletDropIn = (rig: Rig) =>
  path.join(rig.root, 'etc/systemd/system/kubelet.service.d/10-ctrvol.conf');

describe('ctrvol setup with volume.bindMounts', () => {
  test('carries each directory onto the volume, verified, and binds it there', async (t) => {
    const rig = await makeBindRig(t);
    await writeFile(path.join(rig.mountPoint, 'cached'), 'pause image');
    await fillKubeletTree(rig.kubelet);
    const before = await treeManifest(rig.kubelet);
    // The volume's top directory changes as ctrvol adds its own folders there.
    const store = await treeManifest(rig.mountPoint, { includeRoot: false });

    const result = await rig.setup('--verify', 'content');

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /bind: finished in \d+ ms/);
    assert.equal(await boundFrom(rig, rig.kubelet), ownFolder(rig, rig.kubelet));
    assert.equal(await boundFrom(rig, rig.pods), ownFolder(rig, rig.pods));
    assert.deepEqual(diffManifests(before, await treeManifest(rig.kubelet)), []);
    const onVolume = path.join(rig.mountPoint, 'ctrvol-bind', rig.kubelet);
    assert.deepEqual(diffManifests(before, await treeManifest(onVolume)), []);
    // The old store's copy and its verification leave the bound folders out.
    assert.deepEqual(
      diffManifests(
        store,
        await treeManifest(rig.mountPoint, {
          exclude: ['.ctrvol', 'lost+found', 'ctrvol-bind'],
          includeRoot: false,
        }),
      ),
      [],
    );
    const dropIn = await readFile(kubeletDropIn(rig), 'utf8');
    assert.match(dropIn, /^Requires=ctrvol-setup\.service$/m);
    assert.match(dropIn, /^After=ctrvol-setup\.service$/m);
    assert.deepEqual((await readState(rig)).bindMounts, [rig.kubelet, rig.pods]);

    const status = await rig.ctrvol('status');
    const json = JSON.parse((await rig.ctrvol('status', '--json')).stdout);
    assert.match(
      status.stdout,
      new RegExp(`bind +${rig.kubelet} from ctrvol-bind${rig.kubelet}, bound`),
    );
    assert.deepEqual(
      json.bindMounts.map((entry: { directory: string; bound: boolean }) => [
        entry.directory,
        entry.bound,
      ]),
      [
        [rig.kubelet, true],
        [rig.pods, true],
      ],
    );
  });

  test('says already done on a second run and never copies over what the node wrote since', async (t) => {
    const rig = await makeBindRig(t);
    await fillPods(rig.pods);
    assert.equal((await rig.setup()).exitCode, 0);
    await writeFile(path.join(rig.pods, 'kube-system_coredns_1/coredns/0.log'), 'newer\n');
    await writeFile(path.join(rig.kubelet, 'written-after-setup'), 'keep me');

    const second = await rig.setup();

    assert.equal(second.exitCode, 0, second.stderr);
    assert.match(second.stderr, /bind: already done: .*kubelet, .*pods bound from the volume/);
    assert.match(second.stderr, /nothing to change, already set up/);
    assert.equal(
      await readFile(path.join(rig.pods, 'kube-system_coredns_1/coredns/0.log'), 'utf8'),
      'newer\n',
    );
    assert.equal(await readFile(path.join(rig.kubelet, 'written-after-setup'), 'utf8'), 'keep me');
  });

  test('binds again after a reboot, without copying again', async (t) => {
    const rig = await makeBindRig(t);
    await fillKubeletTree(rig.kubelet);
    assert.equal((await rig.setup()).exitCode, 0);
    await writeFile(path.join(rig.kubelet, 'written-after-setup'), 'from the first boot');
    const onVolume = await treeManifest(rig.kubelet);
    await reboot(rig);
    await writeFile(path.join(rig.kubelet, 'only-on-the-root-disk'), 'hidden');

    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(
      result.stderr,
      /kubelet was carried onto the volume on [-\dT:.Z]+; not copying again/,
    );
    assert.doesNotMatch(result.stderr, /the copy of \S*kubelet matches its source/);
    assert.equal(await boundFrom(rig, rig.kubelet), ownFolder(rig, rig.kubelet));
    assert.equal(await boundFrom(rig, rig.pods), ownFolder(rig, rig.pods));
    assert.deepEqual(diffManifests(onVolume, await treeManifest(rig.kubelet)), []);
    assert.equal(existsSync(path.join(rig.kubelet, 'only-on-the-root-disk')), false);
    assert.match((await rig.setup()).stderr, /nothing to change, already set up/);
  });

  test('carries a directory added to a node already set up, binding only that one', async (t) => {
    const rig = await makeBindRig(t, () => []);
    assert.equal((await rig.setup()).exitCode, 0);
    assert.equal(existsSync(kubeletDropIn(rig)), false);
    await fillPods(rig.pods);
    const before = await treeManifest(rig.pods);
    await rig.setBindMounts([rig.pods]);

    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(await boundFrom(rig, rig.pods), ownFolder(rig, rig.pods));
    assert.deepEqual(diffManifests(before, await treeManifest(rig.pods)), []);
    assert.ok(existsSync(kubeletDropIn(rig)));
    assert.equal(await mountedAt(rig.kubelet), undefined);
  });

  test('leaves the folder of a directory taken out of bindMounts on the volume, and says so', async (t) => {
    const rig = await makeBindRig(t);
    await fillPods(rig.pods);
    assert.equal((await rig.setup()).exitCode, 0);
    await writeFile(path.join(rig.pods, 'written-after-setup'), Buffer.alloc(1 << 20, 1));
    await rig.setBindMounts([rig.kubelet]);

    const live = await rig.setup();

    assert.equal(live.exitCode, 0, live.stderr);
    const folder = path.join(rig.mountPoint, 'ctrvol-bind', rig.pods);
    const warning = new RegExp(
      `WARN bind: ${rig.pods} is no longer in volume.bindMounts: its data stays on the volume ` +
        `in ${folder} \\(1\\.\\d MiB\\)`,
    );
    assert.match(live.stderr, warning);
    assert.match(live.stderr, /it stays bound there until the next boot/);
    assert.ok(existsSync(kubeletDropIn(rig)), 'the kubelet still has a bound directory');

    await reboot(rig);
    const afterReboot = await rig.setup();

    assert.equal(afterReboot.exitCode, 0, afterReboot.stderr);
    assert.match(afterReboot.stderr, warning);
    assert.equal(await mountedAt(rig.pods), undefined);
    assert.equal((await readFile(path.join(folder, 'written-after-setup'))).length, 1 << 20);
    assert.ok(existsSync(path.join(folder, 'kube-system_coredns_1/coredns/0.log')));

    await rig.setBindMounts([]);
    assert.equal((await rig.setup()).exitCode, 0);
    assert.equal(existsSync(kubeletDropIn(rig)), false, 'no bind mounts, no kubelet drop-in');
    assert.equal((await readState(rig)).bindMounts, undefined);
  });

  test('redoes a copy killed part way, removing only its own half copy', async (t) => {
    const rig = await makeBindRig(t);
    await fillKubeletTree(rig.kubelet);
    const before = await treeManifest(rig.kubelet);
    // The old store is empty, so the first cp is the kubelet directory's.
    const bin = path.join(rig.dir, 'stand-ins');
    await mkdir(bin);
    const ready = path.join(rig.dir, 'cp.ready');
    await writeFile(
      path.join(bin, 'cp'),
      '#!/bin/sh\nfor destination; do :; done\necho half > "$destination/half-copied"\n' +
        `touch ${ready}\nexec sleep 600\n`,
    );
    await chmod(path.join(bin, 'cp'), 0o755);
    const running = rig.spawnSetup({ PATH: `${bin}:${process.env.PATH ?? ''}` });
    const deadline = Date.now() + 30_000;
    while (!existsSync(ready)) {
      assert.ok(Date.now() < deadline, 'setup never reached the copy');
      await sleep(50);
    }

    process.kill(-(running.pid as number), 'SIGKILL');
    assert.equal((await running).signal, 'SIGKILL');
    const folder = path.join(rig.mountPoint, 'ctrvol-bind', rig.kubelet);
    assert.ok(existsSync(path.join(folder, 'half-copied')));
    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /removing a copy that an earlier run did not finish/);
    assert.equal(await boundFrom(rig, rig.kubelet), ownFolder(rig, rig.kubelet));
    assert.deepEqual(diffManifests(before, await treeManifest(rig.kubelet)), []);
  });

  test('keeps pod mounts under a bound directory from showing again under the volume', async (t) => {
    const rig = await makeBindRig(t);
    // Shared mounts, as systemd makes them at boot, made on the test's own directory only.
    await execa('mount', ['--bind', rig.dir, rig.dir]);
    await execa('mount', ['--make-rshared', rig.dir]);
    assert.equal((await rig.setup()).exitCode, 0);

    const secret = path.join(rig.kubelet, 'pods/1234/volumes/secret');
    await mkdir(secret, { recursive: true });
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'pod-secret', secret]);
    rig.defer(() => execa('umount', [secret], { reject: false }));

    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    const line = mountinfo.split('\n').find((entry) => entry.split(' ')[4] === rig.kubelet);
    assert.match(line ?? '', / shared:\d+ /, 'the kubelet needs its directory shared');
    const pods = (await readMounts()).filter((entry) => entry.source === 'pod-secret');
    assert.deepEqual(
      pods.map((entry) => entry.mountPoint),
      [secret],
    );
  });

  test('prints the plan on --dry-run and changes nothing', async (t) => {
    const rig = await makeBindRig(t);
    await fillPods(rig.pods);

    const first = await rig.setup('--dry-run');

    assert.equal(first.exitCode, 0, first.stderr);
    assert.match(
      first.stdout,
      new RegExp(`copy \\S+ \\S+ from ${rig.pods} into ctrvol-bind${rig.pods}\n`),
    );
    assert.match(
      first.stdout,
      new RegExp(`bind \\S+/ctrvol-bind${rig.kubelet} over ${rig.kubelet}\n`),
    );
    assert.deepEqual(await probe(rig.device.path), {});
    assert.equal(await mountedAt(rig.pods), undefined);
    assert.equal(existsSync(rig.kubelet), false);
    assert.equal(existsSync(path.join(rig.root, 'etc/systemd')), false);
    assert.equal(existsSync(path.join(rig.root, 'var')), false);

    // On a node already set up, a directory added later is planned from what the volume holds.
    await rig.setBindMounts([rig.kubelet]);
    assert.equal((await rig.setup()).exitCode, 0);
    await rig.setBindMounts([rig.kubelet, rig.pods]);
    const later = await rig.setup('--dry-run');

    assert.equal(later.exitCode, 0, later.stderr);
    assert.match(later.stdout, new RegExp(`\\d\\. copy \\S+ KiB from ${rig.pods} into `));
    assert.match(later.stdout, new RegExp(`\\d\\. bind \\S+ over ${rig.pods}\n`));
    assert.doesNotMatch(later.stdout, /kubelet/);
    assert.equal(await mountedAt(rig.pods), undefined);
    assert.equal(existsSync(path.join(rig.mountPoint, 'ctrvol-bind', rig.pods)), false);
  });
});

describe('ctrvol check with volume.bindMounts', () => {
  test('reports a directory that is no longer bound as a problem, with exit code 1', async (t) => {
    const rig = await makeBindRig(t);
    assert.equal((await rig.setup()).exitCode, 0);
    // With everything bound, only containerd (not running here) is unknown: exit 2.
    const bound = await rig.ctrvol('check');
    assert.equal(bound.exitCode, 2, bound.stdout);

    await execa('umount', [rig.kubelet]);
    const result = await rig.ctrvol('check');

    assert.equal(result.exitCode, 1, result.stdout);
    assert.match(result.stdout, new RegExp(`${rig.kubelet} is not bound from the volume`));
    assert.doesNotMatch(result.stdout, new RegExp(`${rig.pods} is not bound`));
  });
});

describe('ctrvol setup refuses to bind, with exit code 3 and nothing changed', () => {
  const cases: [string, (rig: BindRig) => Promise<void>, RegExp][] = [
    [
      'a directory with mounts beneath it',
      async (rig) => {
        const volume = path.join(rig.kubelet, 'pods/1234/volumes/secret');
        await mkdir(volume, { recursive: true });
        await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'pod-secret', volume]);
      },
      /something is mounted beneath \S+kubelet: \S+secret \(its contents cannot be copied while/,
    ],
    [
      'a directory something else is mounted on',
      async (rig) => {
        await mkdir(rig.kubelet, { recursive: true });
        await execa('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'other-tool', rig.kubelet]);
      },
      /kubelet already has other-tool \(tmpfs\) mounted on it; ctrvol binds only over a plain/,
    ],
    [
      'a symlink',
      async (rig) => {
        await mkdir(path.join(rig.dir, 'elsewhere'));
        await mkdir(path.dirname(rig.kubelet), { recursive: true });
        await symlink(path.join(rig.dir, 'elsewhere'), rig.kubelet);
      },
      /kubelet is a symlink/,
    ],
    [
      'a directory reached through a symlink',
      async (rig) => {
        await mkdir(path.join(rig.dir, 'real-log'));
        await mkdir(path.join(rig.dir, 'var'));
        await symlink(path.join(rig.dir, 'real-log'), path.join(rig.dir, 'var/log'));
      },
      /pods leads through a symlink/,
    ],
    [
      'a file',
      async (rig) => {
        await mkdir(path.dirname(rig.kubelet), { recursive: true });
        await writeFile(rig.kubelet, 'not a directory');
      },
      /kubelet exists and is not a directory/,
    ],
  ];

  for (const [name, prepare, message] of cases) {
    test(`${name}, on the first boot`, async (t) => {
      const rig = await makeBindRig(t);
      await prepare(rig);

      const result = await rig.setup();

      assert.equal(result.exitCode, 3, result.stderr);
      assert.match(result.stderr.trim().split('\n').at(-1) ?? '', message);
      assert.deepEqual(await probe(rig.device.path), {}, 'the device is still blank');
      assert.equal(await mountedAt(rig.mountPoint), undefined);
    });
  }

  test('a directory with mounts beneath it, added to a node already set up', async (t) => {
    const rig = await makeBindRig(t, () => []);
    assert.equal((await rig.setup()).exitCode, 0);
    await rig.setBindMounts([rig.kubelet]);
    await cases[0]?.[1](rig);

    const result = await rig.setup();

    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /something is mounted beneath/);
    assert.equal(existsSync(path.join(rig.mountPoint, 'ctrvol-bind')), false);
    assert.equal(existsSync(kubeletDropIn(rig)), false);
  });

  test('an old store that holds a ctrvol-bind entry, before mkfs', async (t) => {
    const rig = await makeBindRig(t);
    await mkdir(path.join(rig.mountPoint, 'ctrvol-bind/var/lib/kubelet'), { recursive: true });

    const result = await rig.setup();

    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /holds a ctrvol-bind entry, ctrvol's own name on a volume/);
    assert.deepEqual(await probe(rig.device.path), {});
  });

  test('a volume too small for the bound directories, before mkfs, so the device stays blank', async (t) => {
    const rig = await makeBindRig(t);
    await mkdir(rig.kubelet, { recursive: true });
    // Real blocks, not a sparse file: du counts what a copy would need.
    await writeFile(path.join(rig.kubelet, 'big'), Buffer.alloc(480 * 1024 * 1024, 1));

    const result = await rig.setup();

    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`is too small for ${rig.kubelet}: it needs [\\d.]+ MiB`),
    );
    assert.deepEqual(await probe(rig.device.path), {});
    assert.equal(await mountedAt(rig.kubelet), undefined);
  });
});
