import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, mkdir, open, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { ctrvolBinary, makeRig, mountedAt, probe } from './rig.js';

/** A file name that is not valid UTF-8, as the bytes a path can hold. */
const latin1Name = (name: string) => Buffer.from(name, 'latin1');

describe('ctrvol setup against hostile stores and states', () => {
  test('copies again, rather than trusting an old copy, when the store changed before the first mount', async (t) => {
    const rig = await makeRig(t, { volumeYaml: '  mountOptions: [defaults, noatim]' });
    await writeFile(path.join(rig.mountPoint, 'meta.db'), 'version 1');

    const failed = await rig.setup();
    assert.equal(failed.exitCode, 1, 'the misspelt mount option fails the mount');
    await writeFile(path.join(rig.mountPoint, 'meta.db'), 'version 2');
    await writeFile(path.join(rig.mountPoint, 'blob'), 'new since the copy');
    const config = await readFile(rig.configFile, 'utf8');
    await rig.writeConfig(config.replace('noatim]', 'noatime]'));
    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /changed since it was copied, and the volume was never mounted/);
    assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
    assert.equal(await readFile(path.join(rig.mountPoint, 'meta.db'), 'utf8'), 'version 2');
    assert.equal(await readFile(path.join(rig.mountPoint, 'blob'), 'utf8'), 'new since the copy');
  });

  test('copies and verifies names that are not UTF-8, whiteouts among them', async (t) => {
    const rig = await makeRig(t);
    const at = (name: string) =>
      Buffer.concat([Buffer.from(`${rig.mountPoint}/`), latin1Name(name)]);
    await writeFile(at('n\xff'), 'one');
    await writeFile(at('n\xfe'), 'two');
    // Node has no mknod; python's os.mknod takes the name as bytes.
    await execa('python3', [
      '-c',
      'import os, sys; os.mknod(os.fsencode(sys.argv[1]) + b"/wh\\xe9", 0o20644, 0)',
      rig.mountPoint,
    ]);

    const result = await rig.setup('--verify', 'content');

    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
    assert.equal(await readFile(at('n\xff'), 'utf8'), 'one');
    assert.equal(await readFile(at('n\xfe'), 'utf8'), 'two');
    const whiteout = await lstat(at('wh\xe9'));
    assert.ok(whiteout.isCharacterDevice() && whiteout.rdev === 0);
  });

  const refusedBeforeMkfs: [
    string,
    (mountPoint: string, dir: string) => Promise<string>,
    RegExp,
  ][] = [
    [
      'a mount point that is a symlink',
      async (mountPoint, dir) => {
        await mkdir(path.join(dir, 'real'));
        await execa('rmdir', [mountPoint]);
        await symlink(path.join(dir, 'real'), mountPoint);
        return mountPoint;
      },
      /is a symlink \(set volume\.mountPoint to the directory it points to/,
    ],
    [
      'a mount point that is a file',
      async (mountPoint) => {
        await execa('rmdir', [mountPoint]);
        await writeFile(mountPoint, 'not a directory');
        return mountPoint;
      },
      /exists and is not a directory/,
    ],
    [
      'a store that already holds a .ctrvol entry',
      async (mountPoint) => {
        await mkdir(path.join(mountPoint, '.ctrvol'));
        await writeFile(
          path.join(mountPoint, '.ctrvol/preserved.json'),
          JSON.stringify({ at: '2020-01-01' }),
        );
        return mountPoint;
      },
      /holds a \.ctrvol entry, ctrvol's own name on a volume/,
    ],
  ];

  for (const [name, prepare, message] of refusedBeforeMkfs) {
    test(`refuses ${name} with exit code 3, before mkfs`, async (t) => {
      const rig = await makeRig(t);
      await prepare(rig.mountPoint, rig.dir);

      const result = await rig.setup();

      assert.equal(result.exitCode, 3, result.stderr);
      assert.match(result.stderr, message);
      assert.deepEqual(await probe(rig.device.path), {}, 'the device is still blank');
    });
  }

  test('refuses a device whose signatures contradict each other', async (t) => {
    const rig = await makeRig(t);
    await execa('mkfs.ext4', ['-q', '-L', 'ctrvol', rig.device.path]);
    // A btrfs superblock magic at 64 KiB + 0x40 beside the ext4 one: libblkid cannot choose.
    const handle = await open(rig.device.path, 'r+');
    await handle.write(Buffer.from('_BHRfS_M'), 0, 8, 65536 + 0x40);
    await handle.close();

    const result = await rig.setup();

    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /carries conflicting signatures/);
  });

  test('names a damaged state file and refuses with exit code 3', async (t) => {
    const rig = await makeRig(t);
    const state = path.join(rig.root, 'var/lib/ctrvol/state.json');
    await mkdir(path.dirname(state), { recursive: true });
    await writeFile(state, '{"version": 1, "uu');

    const setup = await rig.setup();
    const status = await rig.ctrvol('status');

    for (const result of [setup, status]) {
      assert.equal(result.exitCode, 3, result.stderr);
      assert.match(result.stderr, new RegExp(`${state} cannot be read: .*move it aside`));
    }
  });

  test('says what is in the way when the lock path is a directory', async (t) => {
    const rig = await makeRig(t);
    const lock = path.join(rig.root, 'var/lib/ctrvol/setup.lock');
    await mkdir(lock, { recursive: true });

    const result = await rig.setup();

    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /setup\.lock is in the way of ctrvol's lock: it is not a file/);
    assert.ok(existsSync(lock));
  });

  test('checks for every tool it needs before it changes anything', async (t) => {
    const rig = await makeRig(t);
    await writeFile(path.join(rig.mountPoint, 'cached'), 'x');
    const bin = path.join(rig.dir, 'bin');
    await mkdir(bin);
    for (const tool of [
      'blkid',
      'wipefs',
      'mount',
      'umount',
      'mkfs.xfs',
      'xfs_info',
      'xfs_growfs',
      'cp',
      'du',
      'sync',
      'find',
    ]) {
      const found = (await execa('sh', ['-c', `command -v ${tool}`])).stdout.trim();
      await symlink(found, path.join(bin, tool));
    }

    const result = await execa(process.execPath, [ctrvolBinary, 'setup', '--root', rig.root], {
      reject: false,
      env: { PATH: bin },
      extendEnv: false,
    });

    assert.equal(result.exitCode, 3, result.stderr);
    assert.match(result.stderr, /required tools not found: getfattr \(attr\)/);
    assert.deepEqual(await probe(rig.device.path), {});
  });
});
