import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { startContainerd } from '../helpers/containerd.js';
import { treeChecksum } from '../helpers/store.js';
import { makeRig, mountedAt, probe, type Rig } from './rig.js';

async function hashDevice(devicePath: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(devicePath)) {
    hash.update(chunk as Buffer);
  }

  return hash.digest('hex');
}

/** Everything a refused run must leave exactly as it was. */
async function snapshot(rig: Rig) {
  return {
    device: await hashDevice(rig.device.path),
    store: await treeChecksum(rig.mountPoint),
    mounted: await mountedAt(rig.mountPoint),
    state: existsSync(path.join(rig.root, 'var/lib/ctrvol/state.json')),
    dropIn: existsSync(path.join(rig.root, 'etc/systemd/system/containerd.service.d')),
  };
}

async function fillStore(rig: Rig, bytes = 1 << 20): Promise<void> {
  await mkdir(path.join(rig.mountPoint, 'io.containerd.content.v1.content'), { recursive: true });
  await writeFile(
    path.join(rig.mountPoint, 'io.containerd.content.v1.content/blob'),
    Buffer.alloc(bytes, 3),
  );
}

async function assertRefused(
  rig: Rig,
  exitCode: number,
  message: RegExp,
  extraArgs: string[] = [],
) {
  await fillStore(rig);
  const before = await snapshot(rig);

  const result = await rig.setup(...extraArgs);

  assert.equal(result.exitCode, exitCode, result.stderr);
  const lastLine = result.stderr.trim().split('\n').at(-1) ?? '';
  assert.match(lastLine, /^ctrvol: /);
  assert.match(lastLine, message);
  assert.deepEqual(await snapshot(rig), before);
}

describe('ctrvol setup refuses, changing nothing', () => {
  test('a device with a foreign filesystem, with exit code 3', async (t) => {
    const rig = await makeRig(t);
    await execa('mkfs.ext4', ['-q', '-L', 'data', rig.device.path]);

    await assertRefused(
      rig,
      3,
      /carries a filesystem: ext4, label "data", UUID [-0-9a-f]+; ctrvol formats only blank devices/,
    );
  });

  test("an xfs filesystem without ctrvol's label, even with the right type", async (t) => {
    const rig = await makeRig(t);
    await execa('mkfs.xfs', ['-q', rig.device.path]);

    await assertRefused(rig, 3, /carries a filesystem: xfs, no label/);
  });

  test("a device that is mounted somewhere else, even one with ctrvol's label", async (t) => {
    const rig = await makeRig(t);
    await execa('mkfs.xfs', ['-q', '-L', 'ctrvol', rig.device.path]);
    const elsewhere = path.join(rig.dir, 'elsewhere');
    await mkdir(elsewhere);
    await execa('mount', [rig.device.path, elsewhere]);
    rig.defer(() => execa('umount', [elsewhere], { reject: false }));

    await fillStore(rig);
    const store = await treeChecksum(rig.mountPoint);
    const result = await rig.setup();

    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(`is mounted at ${elsewhere}; ctrvol only mounts it itself`),
    );
    assert.equal(await mountedAt(elsewhere), rig.device.path);
    assert.equal(await mountedAt(rig.mountPoint), undefined);
    assert.equal(await treeChecksum(rig.mountPoint), store);
  });

  test('a device with a partition table and partitions', async (t) => {
    const rig = await makeRig(t);
    // One Linux partition in a DOS table, then a partition scan so that the kernel (and sysfs)
    // knows the partition, as it would on a real disk.
    const mbr = Buffer.alloc(512);
    mbr.writeUInt8(0x83, 0x1be + 4);
    mbr.writeUInt32LE(2048, 0x1be + 8);
    mbr.writeUInt32LE(4096, 0x1be + 12);
    mbr.writeUInt16LE(0xaa55, 0x1fe);
    const handle = await open(rig.device.path, 'r+');
    await handle.write(mbr, 0, 512, 0);
    await handle.close();
    await execa('partx', ['--add', rig.device.path]);
    rig.defer(() => execa('partx', ['--delete', rig.device.path], { reject: false }));
    const name = path.basename(rig.device.path);
    assert.ok(existsSync(`/sys/class/block/${name}/${name}p1`), 'the kernel saw the partition');

    await assertRefused(rig, 3, /has partitions \(loop\d+p1\); ctrvol uses whole, blank disks/);
  });

  test('a volume too small for the store, before mkfs, so the device stays blank', async (t) => {
    const rig = await makeRig(t, { sizeBytes: 64 * 1024 * 1024, filesystem: 'ext4' });
    await execa('fallocate', ['-l', '100M', path.join(rig.mountPoint, 'big-layer')]);

    await assertRefused(rig, 3, /too small for .*: it needs .*attach a larger volume/);
    assert.deepEqual(await probe(rig.device.path), {});
  });

  test("xfs on a device below xfs's 300 MB minimum, as a config error with exit code 2", async (t) => {
    const rig = await makeRig(t, { sizeBytes: 200 * 1024 * 1024 });

    await assertRefused(
      rig,
      2,
      /volume\.filesystem: got "xfs" for \/dev\/loop\d+ of 200\.0 MiB; allowed: "xfs" on 300 MB or more, "ext4" below that/,
    );
  });

  test('a bad config, with exit code 2 and one line naming the key, the value and what is allowed', async (t) => {
    const rig = await makeRig(t);
    await rig.writeConfig(`volume:\n  device: ${rig.device.path}\n  filesystem: zfs\n`);

    await assertRefused(
      rig,
      2,
      /^ctrvol: .*config\.yaml: volume\.filesystem: got "zfs"; allowed: "xfs" \| "ext4"$/,
    );
  });

  // Such paths used to pass the config and fail only in the wire step, after mkfs and mount.
  const controlPaths: [string, (rig: Rig) => string, RegExp][] = [
    [
      'a mount point holding a line feed',
      (rig) => `  mountPoint: "${rig.mountPoint}\\nx"`,
      /volume\.mountPoint: got ".*\\nx"; allowed: a path without control characters/,
    ],
    [
      'a metrics textfile holding a tab',
      (rig) => `monitor: {metrics: {textfile: "${rig.dir}/a\\tb/x.prom"}}`,
      /monitor\.metrics\.textfile: got ".*\/a\\tb\/x\.prom"; allowed: a path without control/,
    ],
  ];
  for (const [name, line, message] of controlPaths) {
    test(`${name}, as a config error with exit code 2, before mkfs`, async (t) => {
      const rig = await makeRig(t);
      const config = await readFile(rig.configFile, 'utf8');
      const yaml = line(rig);
      await rig.writeConfig(
        yaml.startsWith('  ')
          ? config.replace(/^ {2}mountPoint: .*$/m, yaml)
          : `${config}${yaml}\n`,
      );

      await assertRefused(rig, 2, message);
      assert.deepEqual(await probe(rig.device.path), {});
    });
  }

  test('a device that does not exist, with exit code 3', async (t) => {
    const rig = await makeRig(t);
    const config = await readFile(rig.configFile, 'utf8');
    await rig.writeConfig(config.replace(rig.device.path, '/dev/ctrvol-test-absent'));

    await assertRefused(
      rig,
      3,
      // With waitSeconds: 0 there was no wait to speak of.
      /^(?!.*after waiting).*\/dev\/ctrvol-test-absent: no such device; seen: .*loop\d+ \(512\.0 MiB/,
    );
  });

  test('a store that a live containerd is using, with exit code 3', async (t) => {
    const rig = await makeRig(t);
    await fillStore(rig);
    const containerd = await startContainerd({
      root: rig.mountPoint,
      state: path.join(rig.dir, 'state'),
      dir: path.join(rig.dir, 'ctrd'),
    });
    rig.defer(() => containerd.stop());
    const config = await readFile(rig.configFile, 'utf8');
    await rig.writeConfig(config.replace(/socket: .*/, `socket: ${containerd.socket}`));
    const device = await hashDevice(rig.device.path);

    const result = await rig.setup();

    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /containerd is running on .*stop containerd and the kubelet/);
    assert.equal(await hashDevice(rig.device.path), device);
  });
});

describe('ctrvol setup on a device of noise', () => {
  // An erased instance-store disk reads as noise, and random noise matches libblkid's loose Atari
  // partition-table check about once in 1,800 disks. A loop device is not instance storage, and
  // there noise may as well be compressed or encrypted data: it is refused, with or without a
  // false table. (That an instance-store disk of noise counts as blank is a unit test of
  // isBlankContent and isBlank, since no NVMe model can be set here.)
  test('refuses noise that carries a false Atari partition table', async (t) => {
    const rig = await makeRig(t);
    // A root sector whose first primary entry is "active" with an alphanumeric id inside the
    // disk. The sector is written out in full (libblkid checks more of it than these fields),
    // amid the noise of the rest.
    const noise = randomBytes(1024 * 1024);
    const sector = noise.subarray(0, 512).fill(0);
    sector.writeUInt32BE(512 * 2048, 0x1c2);
    sector.writeUInt8(1, 0x1c6);
    sector.write('BGM', 0x1c7, 'latin1');
    sector.writeUInt32BE(10, 0x1ca);
    sector.writeUInt32BE(100, 0x1ce);
    const handle = await open(rig.device.path, 'r+');
    await handle.write(noise, 0, noise.length, 0);
    await handle.close();
    assert.equal((await probe(rig.device.path)).PTTYPE, 'atari');

    await assertRefused(
      rig,
      3,
      /is not blank: it reads as random bytes, which only an erased instance-store disk is/,
    );
  });

  test('refuses compressed data that carries no signature', async (t) => {
    const rig = await makeRig(t);
    const handle = await open(rig.device.path, 'r+');
    await handle.write(gzipSync(randomBytes(4 * 1024 * 1024)), 0, undefined, 0);
    await handle.close();

    await assertRefused(rig, 3, /it reads as random bytes/);
  });
});

describe('ctrvol setup refuses data that carries no signature', () => {
  const records = (bytes: number) =>
    Buffer.from('customer record 0042; balance 17.20\n'.repeat(Math.ceil(bytes / 36))).subarray(
      0,
      bytes,
    );

  for (const [where, offset] of [
    ['at the start', 0],
    ['in the middle, behind zeros', 256 * 1024 * 1024],
  ] as const) {
    test(`records ${where}, with exit code 3`, async (t) => {
      const rig = await makeRig(t);
      const handle = await open(rig.device.path, 'r+');
      await handle.write(records(8 * 1024 * 1024), 0, 8 * 1024 * 1024, offset);
      await handle.close();
      assert.deepEqual(await probe(rig.device.path), {}, 'blkid sees no signature');

      await assertRefused(
        rig,
        3,
        /carries no signature blkid knows, but is not blank: the bytes at offset \d+ are not zeros/,
      );
    });
  }
});
