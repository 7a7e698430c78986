import { randomUUID } from 'node:crypto';
import { link, lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EnvironmentError } from '../errors.js';

/**
 * A lock file that a user-data run and the boot unit both honour. Node has no flock and the
 * single-file bundle cannot carry a native addon, so the file is created atomically with link(2)
 * and judged stale by its owner: a lock whose PID is gone, whose PID now belongs to a process
 * started at another time, or that was written during another boot, is left over from a crash
 * or a kill -9 and is taken over.
 */
export interface LockOwner {
  pid: number;
  bootId: string;
  /** The owner's start time in clock ticks since boot (/proc/PID/stat field 22), against PID reuse. */
  startTime: string;
  nonce: string;
  command: string;
}

export interface HeldLock {
  owner: LockOwner;
  release(): Promise<void>;
}

export interface LockOptions {
  procDir?: string;
  waitMs: number;
  pollMs?: number;
  /** Called once when the lock is found held by a live process. */
  onWait?: (owner: LockOwner) => void;
  onStale?: (owner: LockOwner) => void;
}

export async function acquireLock(file: string, options: LockOptions): Promise<HeldLock> {
  const procDir = options.procDir ?? '/proc';
  const owner: LockOwner = {
    pid: process.pid,
    bootId: await readBootId(procDir),
    startTime: (await readStartTime(procDir, process.pid)) ?? '',
    nonce: randomUUID(),
    command: process.argv.slice(2).join(' '),
  };
  await mkdir(path.dirname(file), { recursive: true });
  const deadline = Date.now() + options.waitMs;
  let waited = false;

  for (;;) {
    if (await tryCreate(file, owner)) {
      return { owner, release: () => releaseLock(file, owner) };
    }

    const kind = await lstat(file).catch(() => undefined);
    if (kind !== undefined && !kind.isFile()) {
      throw new EnvironmentError(`${file} is in the way of ctrvol's lock: it is not a file`, {
        hint: 'move it aside; nothing was changed',
      });
    }

    const holder = await readOwner(file);
    if (holder === undefined || !(await isAlive(procDir, holder, owner.bootId))) {
      options.onStale?.(holder ?? { ...owner, pid: 0, command: 'unreadable lock file' });
      await removeStale(file, holder);
      continue;
    }

    if (!waited) {
      options.onWait?.(holder);
      waited = true;
    }

    if (Date.now() >= deadline) {
      throw new EnvironmentError(
        `another ctrvol (pid ${holder.pid}, "${holder.command}") holds ${file}`,
        { hint: 'wait for it to finish; the lock is freed automatically if it dies' },
      );
    }

    await sleep(options.pollMs ?? 250);
  }
}

async function tryCreate(file: string, owner: LockOwner): Promise<boolean> {
  const temporary = `${file}.${owner.pid}.${owner.nonce}`;
  await writeFile(temporary, JSON.stringify(owner));
  try {
    // link() fails with EEXIST if the lock exists, which open(O_EXCL) also does, but link lets
    // the lock appear with its content already written: no reader ever sees an empty lock.
    await link(temporary, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      return false;
    }

    throw error;
  } finally {
    await rm(temporary, { force: true });
  }
}

async function readOwner(file: string): Promise<LockOwner | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as LockOwner;
  } catch {
    return undefined;
  }
}

async function isAlive(procDir: string, holder: LockOwner, bootId: string): Promise<boolean> {
  if (holder.bootId !== bootId) {
    return false;
  }

  const startTime = await readStartTime(procDir, holder.pid);
  return startTime !== undefined && startTime === holder.startTime;
}

/**
 * Two processes may both find the same stale lock. Each moves it aside under its own name and
 * checks that what it moved is the stale lock it judged; if it moved a lock that a third process
 * just took, it puts that one back.
 */
async function removeStale(file: string, stale: LockOwner | undefined): Promise<void> {
  const aside = `${file}.stale.${process.pid}.${randomUUID()}`;
  try {
    await rename(file, aside);
  } catch {
    return;
  }

  const moved = await readOwner(aside);
  if (stale !== undefined && moved !== undefined && moved.nonce !== stale.nonce) {
    await link(aside, file).catch(() => undefined);
  }

  await rm(aside, { force: true });
}

async function releaseLock(file: string, owner: LockOwner): Promise<void> {
  const holder = await readOwner(file);
  if (holder?.nonce === owner.nonce) {
    await rm(file, { force: true });
  }
}

async function readBootId(procDir: string): Promise<string> {
  return (await readFile(path.join(procDir, 'sys/kernel/random/boot_id'), 'utf8')).trim();
}

async function readStartTime(procDir: string, pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(path.join(procDir, String(pid), 'stat'), 'utf8');
    // The command name in field 2 may hold spaces and parentheses; count from the last ")".
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
