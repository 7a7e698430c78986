import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { diffManifests, seedStandInStore, treeManifest } from '../helpers/store.js';
import { makeRig, mountedAt, probe, type Rig } from './rig.js';

/**
 * A tool on PATH ahead of the real one that does part of the real tool's work, says it got
 * there, and hangs, so that the test can kill ctrvol at that exact point with kill -9.
 */
async function installStandIn(
  rig: Rig,
  name: string,
  script: string,
): Promise<Record<string, string>> {
  const bin = path.join(rig.dir, 'stand-ins');
  await mkdir(bin, { recursive: true });
  await writeFile(path.join(bin, name), `#!/bin/sh\n${script}\ntouch "$READY"\nexec sleep 600\n`);
  await chmod(path.join(bin, name), 0o755);

  return { PATH: `${bin}:${process.env.PATH ?? ''}`, READY: path.join(rig.dir, `${name}.ready`) };
}

/** Starts setup with the stand-in, waits until it hangs inside it, and kills the whole group. */
async function killDuring(rig: Rig, env: Record<string, string>): Promise<void> {
  const run = rig.spawnSetup(env);
  const ready = env.READY as string;
  const deadline = Date.now() + 30_000;
  while (!existsSync(ready)) {
    assert.ok(Date.now() < deadline, 'setup never reached the stand-in');
    await sleep(50);
  }

  process.kill(-(run.pid as number), 'SIGKILL');
  const result = await run;
  assert.equal(result.signal, 'SIGKILL');
}

describe('ctrvol setup after a kill -9', () => {
  test('converges when killed during mkfs, reformatting its own half-made filesystem', async (t) => {
    const rig = await makeRig(t);
    await seedStandInStore(rig.mountPoint, { bytes: 4 << 20, fileCount: 200 });
    const before = await treeManifest(rig.mountPoint);
    // The real mkfs, then its allocation-group headers torn away, as a kill mid-write leaves
    // them: the superblock still says xfs and "ctrvol", but the filesystem cannot be mounted.
    const env = await installStandIn(
      rig,
      'mkfs.xfs',
      [
        'for device; do :; done',
        '/usr/sbin/mkfs.xfs "$@" >/dev/null 2>&1',
        'dd if=/dev/zero of="$device" bs=512 seek=1 count=2047 conv=notrunc status=none',
      ].join('\n'),
    );

    await killDuring(rig, env);
    assert.ok(existsSync(path.join(rig.root, 'var/lib/ctrvol/format-intent.json')));
    assert.equal(
      (await probe(rig.device.path)).LABEL,
      'ctrvol',
      'the torn filesystem has our label',
    );
    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /taking over a lock left by a dead run/);
    assert.match(result.stderr, /format \/dev\/loop\d+ \(interrupted format\) as xfs/);
    assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
    assert.deepEqual(
      diffManifests(before, await treeManifest(rig.mountPoint, { exclude: ['.ctrvol'] })),
      [],
    );
    assert.equal(existsSync(path.join(rig.root, 'var/lib/ctrvol/format-intent.json')), false);
  });

  test('converges when killed during the copy, redoing it through its own staging mount', async (t) => {
    const rig = await makeRig(t);
    await seedStandInStore(rig.mountPoint, { bytes: 4 << 20, fileCount: 200 });
    const before = await treeManifest(rig.mountPoint);
    // Half a copy: one real directory and one truncated file, then the hang.
    const env = await installStandIn(
      rig,
      'cp',
      ['for destination; do :; done', 'echo "half a blob" > "$destination/half-copied"'].join('\n'),
    );

    await killDuring(rig, env);
    const staging = path.join(rig.root, 'run/ctrvol/staging');
    assert.equal(await mountedAt(staging), rig.device.path, 'the kill left the staging mount');
    assert.ok(existsSync(path.join(staging, 'half-copied')));
    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /reusing the staging mount left by an interrupted run/);
    assert.match(result.stderr, /removing a copy that an earlier run did not finish/);
    assert.equal(await mountedAt(staging), undefined);
    assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
    assert.equal(existsSync(path.join(rig.mountPoint, 'half-copied')), false);
    assert.deepEqual(
      diffManifests(before, await treeManifest(rig.mountPoint, { exclude: ['.ctrvol'] })),
      [],
    );
    assert.equal((await execa('umount', [rig.mountPoint])).exitCode, 0);
    assert.deepEqual(diffManifests(before, await treeManifest(rig.mountPoint)), [], 'source kept');
  });

  test('copies again when a crash tore the completion marker before the unmount wrote it', async (t) => {
    const rig = await makeRig(t);
    await seedStandInStore(rig.mountPoint, { bytes: 4 << 20, fileCount: 200 });
    const before = await treeManifest(rig.mountPoint);
    // The marker is synced only by the staging unmount; a power cut before that can leave it
    // empty. The stand-in umount leaves it so, and the kill is the power cut.
    const env = await installStandIn(
      rig,
      'umount',
      ['for target; do :; done', ': > "$target/.ctrvol/preserved.json"'].join('\n'),
    );

    await killDuring(rig, env);
    const staging = path.join(rig.root, 'run/ctrvol/staging');
    const meta = path.join(staging, '.ctrvol');
    assert.equal(await readFile(path.join(meta, 'preserved.json'), 'utf8'), '');
    assert.ok(existsSync(path.join(meta, 'copy-started.json')), 'the copy-started record stays');
    const result = await rig.setup();

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stderr, /removing a copy that an earlier run did not finish/);
    assert.equal(await mountedAt(rig.mountPoint), rig.device.path);
    const volumeMeta = path.join(rig.mountPoint, '.ctrvol');
    const marker = JSON.parse(await readFile(path.join(volumeMeta, 'preserved.json'), 'utf8'));
    assert.equal((marker as { verified: string }).verified, 'metadata');
    assert.equal(existsSync(path.join(volumeMeta, 'copy-started.json')), false);
    assert.deepEqual(
      diffManifests(before, await treeManifest(rig.mountPoint, { exclude: ['.ctrvol'] })),
      [],
    );
  });
});
