import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { acquireLock, type LockOwner } from '../../agent/host/lock.js';

async function makeDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ctrvol-lock-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const bootId = async () => (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();

describe('the setup lock', () => {
  test('is taken, refused to a second taker while held, and free again after release', async (t) => {
    const file = path.join(await makeDir(t), 'setup.lock');
    const held = await acquireLock(file, { waitMs: 0 });

    await assert.rejects(acquireLock(file, { waitMs: 300, pollMs: 50 }), {
      message: new RegExp(`another ctrvol \\(pid ${process.pid}`),
      exitCode: 3,
    });
    await held.release();
    const again = await acquireLock(file, { waitMs: 0 });
    await again.release();
  });

  test('is taken over from a process that died by kill -9', async (t) => {
    const file = path.join(await makeDir(t), 'setup.lock');
    const child = spawn('sleep', ['60']);
    const pid = child.pid as number;
    const startTime = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ')[19];
    const owner: LockOwner = {
      pid,
      bootId: await bootId(),
      startTime: startTime ?? '',
      nonce: 'dead',
      command: 'setup',
    };
    await writeFile(file, JSON.stringify(owner));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(pid, 'SIGKILL');
    await exited;
    const stale: number[] = [];

    const held = await acquireLock(file, { waitMs: 0, onStale: (o) => stale.push(o.pid) });

    assert.deepEqual(stale, [pid]);
    assert.equal(held.owner.pid, process.pid);
    await held.release();
  });

  test('is taken over when written during another boot, even if the PID is alive now', async (t) => {
    const file = path.join(await makeDir(t), 'setup.lock');
    const owner: LockOwner = {
      pid: process.pid,
      bootId: 'another-boot',
      startTime: '1',
      nonce: 'x',
      command: 'setup',
    };
    await writeFile(file, JSON.stringify(owner));

    const held = await acquireLock(file, { waitMs: 0 });

    assert.equal(held.owner.pid, process.pid);
    await held.release();
  });

  test('is taken over when its PID now belongs to a process started at another time', async (t) => {
    const file = path.join(await makeDir(t), 'setup.lock');
    const owner: LockOwner = {
      pid: 1,
      bootId: await bootId(),
      startTime: '999999999',
      nonce: 'x',
      command: 'setup',
    };
    await writeFile(file, JSON.stringify(owner));

    const held = await acquireLock(file, { waitMs: 0 });

    assert.equal(held.owner.pid, process.pid);
    await held.release();
  });

  test('waits for a live holder and gets the lock once it is released', async (t) => {
    const file = path.join(await makeDir(t), 'setup.lock');
    const first = await acquireLock(file, { waitMs: 0 });
    let waitedFor: number | undefined;
    setTimeout(() => void first.release(), 200);

    const second = await acquireLock(file, {
      waitMs: 5000,
      pollMs: 50,
      onWait: (o) => (waitedFor = o.pid),
    });

    assert.equal(waitedFor, process.pid);
    await second.release();
  });
});
