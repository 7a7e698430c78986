import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { link, mkdir, readFile, rm, stat, statfs, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { createLoopDevice, growLoopDevice } from '../helpers/loop.js';
import { diffManifests, treeManifest } from '../helpers/store.js';
import { makeRig, mountedAt, probe } from './rig.js';

const ours = { exclude: ['.ctrvol', 'lost+found'] };

/**
 * The tree as a copy must keep it. XFS stores a POSIX ACL a second time under a trusted.SGI_ACL_*
 * name of its own; the ACL itself is compared through its system.posix_acl_* name.
 */
async function describeTree(dir: string, options = {}): Promise<string[]> {
  return (await treeManifest(dir, options)).map((line) => {
    const [relative, fields] = JSON.parse(line) as [string, { xattrs?: string[] }];
    if (fields.xattrs !== undefined) {
      fields.xattrs = fields.xattrs.filter((entry) => !entry.startsWith('trusted.SGI_ACL_'));
    }

    return JSON.stringify([relative, fields]);
  });
}

async function readState(root: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path.join(root, 'var/lib/ctrvol/state.json'), 'utf8'));
}

/**
 * A store with everything a naive copy loses: xattrs in the user, trusted and security
 * namespaces, an ACL, hard links, a sparse file, an overlay whiteout (a 0:0 character device),
 * a symlink, a fifo, odd owners and modes, and old timestamps.
 */
async function fillAwkwardTree(dir: string): Promise<void> {
  const run = (file: string, args: string[]) => execa(file, args, { stdin: 'ignore' });
  await mkdir(path.join(dir, 'snapshots/1/fs/etc'), { recursive: true });
  await writeFile(path.join(dir, 'snapshots/1/fs/etc/hosts'), '127.0.0.1 localhost\n');
  await run('setfattr', [
    '-n',
    'trusted.overlay.opaque',
    '-v',
    'y',
    path.join(dir, 'snapshots/1/fs'),
  ]);
  await run('mknod', [path.join(dir, 'snapshots/1/fs/etc/whiteout'), 'c', '0', '0']);
  await writeFile(path.join(dir, 'ping'), Buffer.alloc(4096, 7));
  await run('setcap', ['cap_net_raw+ep', path.join(dir, 'ping')]);
  await run('setfattr', ['-n', 'user.origin', '-v', 'ami', path.join(dir, 'ping')]);
  await run('setfacl', ['-m', 'u:1234:r', path.join(dir, 'ping')]);
  await link(path.join(dir, 'ping'), path.join(dir, 'snapshots/1/fs/ping-hardlink'));
  await symlink('../../ping', path.join(dir, 'snapshots/1/ping-link'));
  await run('mkfifo', [path.join(dir, 'fifo')]);
  await run('truncate', ['-s', '64M', path.join(dir, 'sparse.img')]);
  await run('dd', [
    'if=/dev/urandom',
    `of=${path.join(dir, 'sparse.img')}`,
    'bs=4096',
    'count=1',
    'seek=8192',
    'conv=notrunc',
    'status=none',
  ]);
  await writeFile(path.join(dir, 'owned'), 'x');
  await run('chown', ['1234:5678', path.join(dir, 'owned')]);
  await run('chmod', ['4751', path.join(dir, 'owned')]);
  await run('touch', [
    '-h',
    '-d',
    '2001-02-03 04:05:06.123456789',
    path.join(dir, 'snapshots/1/ping-link'),
  ]);
  await run('touch', ['-d', '2002-01-01', path.join(dir, 'snapshots')]);
}

const sysResource = 24;

/** Whether this process holds a capability, from the effective set in /proc/self/status. */
async function hasCapability(bit: number): Promise<boolean> {
  const status = await readFile('/proc/self/status', 'utf8');
  const effective = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(status)?.[1] ?? '0'}`);
  return (effective & (1n << BigInt(bit))) !== 0n;
}

describe('ctrvol setup on a blank loop device', () => {
  for (const filesystem of ['xfs', 'ext4'] as const) {
    test(`formats it as ${filesystem}, mounts it and records its UUID`, async (t) => {
      const rig = await makeRig(t, { filesystem });

      const result = await rig.setup();

      assert.equal(result.exitCode, 0, result.stderr);
      const found = await probe(rig.device.path);
      assert.equal(found.TYPE, filesystem);
      assert.equal(found.LABEL, 'ctrvol');
      assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
      const state = await readState(rig.root);
      assert.equal(state.uuid, found.UUID);
      assert.equal(state.filesystem, filesystem);
      assert.match(result.stderr, /format: finished in \d+ ms: UUID /);
      const dropIn = await readFile(
        path.join(rig.root, 'etc/systemd/system/containerd.service.d/10-ctrvol.conf'),
        'utf8',
      );
      assert.match(dropIn, /^Requires=ctrvol-setup\.service$/m);
      assert.match(dropIn, /^After=ctrvol-setup\.service$/m);
      const monitorDropIn = await readFile(
        path.join(rig.root, 'etc/systemd/system/ctrvol-monitor.service.d/10-ctrvol.conf'),
        'utf8',
      );
      assert.ok(monitorDropIn.includes(`ReadWritePaths=-${rig.mountPoint}`), monitorDropIn);
      assert.equal(existsSync(path.join(rig.root, 'var/lib/ctrvol/format-intent.json')), false);
    });
  }

  test('reuses an ext4 volume of its label under an xfs config, and lets the monitor grow it', async (t) => {
    const rig = await makeRig(t, { filesystem: 'xfs' });
    await execa('mkfs.ext4', ['-q', '-L', 'ctrvol', rig.device.path], { stdin: 'ignore' });

    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /another filesystem; reusing it as it is/);
    assert.equal((await probe(rig.device.path)).TYPE, 'ext4');
    assert.equal((await readState(rig.root)).filesystem, 'ext4');
    // resize2fs opens an ext4 device read-write to grow it online.
    const monitorDropIn = await readFile(
      path.join(rig.root, 'etc/systemd/system/ctrvol-monitor.service.d/10-ctrvol.conf'),
      'utf8',
    );
    assert.match(monitorDropIn, new RegExp(`^DeviceAllow=${rig.device.path} rw$`, 'm'));
  });

  test('changes nothing on a second run, and says so', async (t) => {
    const rig = await makeRig(t);
    assert.equal((await rig.setup()).exitCode, 0);
    await writeFile(path.join(rig.mountPoint, 'written-after-setup'), 'keep me');
    const stateBefore = await readFile(path.join(rig.root, 'var/lib/ctrvol/state.json'), 'utf8');

    const second = await rig.setup();

    assert.equal(second.exitCode, 0, second.stderr);
    assert.match(second.stderr, /nothing to change, already set up/);
    assert.match(second.stderr, /format: already done/);
    assert.doesNotMatch(second.stderr, /finished in \d+ ms: UUID/);
    assert.equal(
      await readFile(path.join(rig.mountPoint, 'written-after-setup'), 'utf8'),
      'keep me',
    );
    assert.equal(
      await readFile(path.join(rig.root, 'var/lib/ctrvol/state.json'), 'utf8'),
      stateBefore,
    );
  });

  test('after a reboot mounts the same volume by UUID, even when its name now points elsewhere', async (t) => {
    const rig = await makeRig(t);
    assert.equal((await rig.setup()).exitCode, 0);
    await writeFile(path.join(rig.mountPoint, 'marker'), 'from the first boot');
    const uuid = (await probe(rig.device.path)).UUID;
    // The "reboot": the volume is unmounted, and the configured name now belongs to another,
    // blank disk, as /dev/nvme1n1 can after NVMe devices answer in another order.
    await execa('umount', [rig.mountPoint]);
    const other = await createLoopDevice({
      sizeBytes: 512 * 1024 * 1024,
      dir: rig.dir,
      name: 'other.img',
    });
    rig.defer(other.detach);
    const config = (await readFile(rig.configFile, 'utf8')).replace(rig.device.path, other.path);
    await rig.writeConfig(config);

    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /found the recorded volume by UUID/);
    assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
    assert.equal((await probe(rig.device.path)).UUID, uuid);
    assert.equal(
      await readFile(path.join(rig.mountPoint, 'marker'), 'utf8'),
      'from the first boot',
    );
    assert.deepEqual(
      await probe(other.path),
      {},
      'the disk now under the configured name stays blank',
    );
  });

  test('refuses, after a reboot, two devices that carry the recorded UUID', async (t) => {
    const rig = await makeRig(t);
    assert.equal((await rig.setup()).exitCode, 0);
    await execa('umount', [rig.mountPoint]);
    // A snapshot of the volume, restored and attached beside it: the same filesystem UUID.
    const copyFile = path.join(rig.dir, 'snapshot.img');
    await execa('cp', ['--sparse=always', rig.device.backingFile, copyFile]);
    const { stdout } = await execa('losetup', ['--find', '--show', copyFile]);
    const copy = stdout.trim();
    rig.defer(() => execa('losetup', ['-d', copy], { reject: false }));

    const result = await rig.setup();

    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /2 devices carry the recorded UUID [-0-9a-f]+: /);
    assert.match(result.stderr, /a copy of the volume \(a restored snapshot\?\) is attached/);
    assert.equal(await mountedAt(rig.mountPoint), undefined);
  });

  for (const filesystem of ['xfs', 'ext4'] as const) {
    test(`grows the ${filesystem} filesystem online when the device was enlarged`, async (t) => {
      const rig = await makeRig(t, { filesystem });
      assert.equal((await rig.setup()).exitCode, 0);
      const before = await statfs(rig.mountPoint);
      await writeFile(path.join(rig.mountPoint, 'kept'), 'through the growth');

      await growLoopDevice(rig.device, 1024 * 1024 * 1024);
      const result = await rig.setup();

      assert.equal(result.exitCode, 0, result.stderr);
      if (filesystem === 'ext4' && !(await hasCapability(sysResource))) {
        // Online ext4 growth is an ioctl that needs CAP_SYS_RESOURCE, which this sandbox's root
        // lacks; the VM suite grows ext4 for real. Here: a clear warning, and setup still works.
        assert.match(result.stderr, /WARN grow: could not grow the filesystem; it keeps its size/);
        return;
      }

      assert.match(result.stderr, /grow: grew the filesystem from [\d.]+ MiB to [\d.]+ (MiB|GiB)/);
      const after = await statfs(rig.mountPoint);
      assert.ok(
        after.blocks * after.bsize > 1.8 * before.blocks * before.bsize,
        `${before.blocks * before.bsize} -> ${after.blocks * after.bsize}`,
      );
      assert.equal(await readFile(path.join(rig.mountPoint, 'kept'), 'utf8'), 'through the growth');
      assert.match(
        (await rig.setup()).stderr,
        /grow: already done: the filesystem fills its device/,
      );
    });
  }

  test('prints the plan on --dry-run and changes nothing', async (t) => {
    const rig = await makeRig(t);
    await writeFile(path.join(rig.mountPoint, 'cached'), 'pause image');

    const result = await rig.setup('--dry-run');

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(
      result.stdout,
      /Dry run: setup would\n {2}1\. format \/dev\/loop\d+ \(blank\) as xfs/,
    );
    assert.match(result.stdout, /mount \/dev\/loop\d+ at /);
    assert.deepEqual(await probe(rig.device.path), {});
    assert.equal(await mountedAt(rig.mountPoint), undefined);
    assert.equal(existsSync(path.join(rig.root, 'var')), false);
    assert.equal(existsSync(path.join(rig.root, 'run')), false);
  });

  test('reports what it set up through ctrvol status', async (t) => {
    const rig = await makeRig(t);
    await writeFile(path.join(rig.mountPoint, 'cached'), Buffer.alloc(1 << 20, 1));
    assert.equal((await rig.setup()).exitCode, 0);

    const text = await rig.ctrvol('status');
    const json = await rig.ctrvol('status', '--json');

    assert.equal(text.exitCode, 0);
    assert.match(text.stdout, /is on its own volume/);
    assert.match(text.stdout, /hidden +1\.0 MiB of the old store lie under the mount point/);
    const report = JSON.parse(json.stdout);
    assert.equal(report.mounted, true);
    assert.equal(report.state.device, rig.device.path);
    assert.ok(report.state.hiddenBytes >= 1 << 20 && report.state.hiddenBytes < 1.1 * (1 << 20));
    assert.ok(report.usage.percent > 0 && report.usage.percent < 100);
  });
});

describe('ctrvol setup carrying the old store onto the volume', () => {
  test('keeps xattrs, ACLs, capabilities, hard links, holes, whiteouts, owners and times', async (t) => {
    const rig = await makeRig(t);
    await fillAwkwardTree(rig.mountPoint);
    const before = await describeTree(rig.mountPoint);

    const result = await rig.setup('--verify', 'content');

    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
    const after = await describeTree(rig.mountPoint, ours);
    assert.deepEqual(diffManifests(before, after), []);
    const sparse = await stat(path.join(rig.mountPoint, 'sparse.img'));
    assert.equal(sparse.size, 64 * 1024 * 1024);
    assert.ok(sparse.blocks * 512 < 1024 * 1024, `sparse file took ${sparse.blocks * 512} bytes`);
    const whiteout = await stat(path.join(rig.mountPoint, 'snapshots/1/fs/etc/whiteout'));
    assert.ok(whiteout.isCharacterDevice() && whiteout.rdev === 0);
  });

  test('leaves the original in place under the mount point unless told to reclaim it', async (t) => {
    const rig = await makeRig(t);
    await fillAwkwardTree(rig.mountPoint);
    const before = await describeTree(rig.mountPoint);
    assert.equal((await rig.setup()).exitCode, 0);

    await execa('umount', [rig.mountPoint]);

    assert.deepEqual(diffManifests(before, await describeTree(rig.mountPoint)), []);
  });

  test('frees the original on the root disk after a verified copy with reclaimRootCopy', async (t) => {
    const rig = await makeRig(t, { volumeYaml: '  reclaimRootCopy: true' });
    await fillAwkwardTree(rig.mountPoint);
    const before = await describeTree(rig.mountPoint);

    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.deepEqual(diffManifests(before, await describeTree(rig.mountPoint, ours)), []);
    assert.equal((await readState(rig.root)).hiddenBytes, 0);
    await execa('umount', [rig.mountPoint]);
    assert.deepEqual(await execa('ls', ['-A', rig.mountPoint]).then((r) => r.stdout), '');
  });

  test('keeps the copy when a reclaim began but the volume never went into service', async (t) => {
    const rig = await makeRig(t, { volumeYaml: '  reclaimRootCopy: true' });
    await fillAwkwardTree(rig.mountPoint);
    // One file the reclaim cannot delete, and a mount that fails: the root disk is left with a
    // fraction of the store, the volume with all of it, and the volume was never mounted.
    const stuck = path.join(rig.mountPoint, 'stuck');
    await writeFile(stuck, 'immutable');
    await execa('chattr', ['+i', stuck]);
    t.after(() => execa('chattr', ['-i', stuck], { reject: false }));
    const before = await describeTree(rig.mountPoint);
    const config = await readFile(rig.configFile, 'utf8');
    await rig.writeConfig(`${config.replace('volume:', 'volume:\n  mountOptions: [nosuchopt]')}`);
    assert.equal((await rig.setup()).exitCode, 1);
    assert.deepEqual(await execa('ls', ['-A', rig.mountPoint]).then((r) => r.stdout), 'stuck');
    await execa('chattr', ['-i', stuck]);

    await rig.writeConfig(config);
    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /copying again/);
    assert.deepEqual(diffManifests(before, await describeTree(rig.mountPoint, ours)), []);
  });
});

describe('ctrvol setup finding the device', () => {
  // Names no real device here has: xvd and two letters, as an EC2 mapping name can be.
  const linkName = (suffix: string) => `xvd${suffix}`;

  async function linkTo(t: { after(fn: () => Promise<void>): void }, name: string, target: string) {
    const link = `/dev/${name}`;
    assert.equal(existsSync(link), false, `${link} already exists; not touching it`);
    await symlink(target, link);
    t.after(() => rm(link, { force: true }));
  }

  test('resolves a block-device mapping name through its udev link', async (t) => {
    const rig = await makeRig(t);
    await linkTo(t, linkName('zy'), rig.device.path);
    const config = await readFile(rig.configFile, 'utf8');
    await rig.writeConfig(
      config.replace(`device: ${rig.device.path}`, `device: ${linkName('zy')}`),
    );

    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /resolved xvdzy device=\/dev\/loop\d+ via="udev link"/);
    assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
  });

  test('waits for a device that appears five seconds after setup starts', async (t) => {
    const rig = await makeRig(t);
    const config = await readFile(rig.configFile, 'utf8');
    await rig.writeConfig(
      config
        .replace(`device: ${rig.device.path}`, `device: /dev/${linkName('zx')}`)
        .replace('waitSeconds: 0', 'waitSeconds: 30'),
    );

    const running = rig.spawnSetup();
    await new Promise((resolve) => setTimeout(resolve, 5000));
    await linkTo(t, linkName('zx'), rig.device.path);
    const result = await running;

    assert.equal(result.exitCode, 0, String(result.stderr));
    assert.match(
      String(result.stderr),
      /waiting for \/dev\/xvdzx .*missing="no device has the mapping name xvdzx/,
    );
    assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
  });
});
