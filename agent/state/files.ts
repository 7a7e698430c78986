import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Small JSON records that must survive a crash intact: written to a temporary file, synced,
 * renamed into place, and the directory synced, so that after a power loss either the old or the
 * new record is there and never half of one.
 */
export function writeJsonDurably(file: string, value: unknown): Promise<void> {
  return writeJson(file, value, true);
}

/**
 * The same write without any sync, leaving that to whatever comes next (an unmount): for a
 * record whose caller copes with finding it missing or torn after a crash, where a sync on a
 * filesystem that was just flushed would cost a journal commit.
 */
export function writeJsonUnsynced(file: string, value: unknown): Promise<void> {
  return writeJson(file, value, false);
}

async function writeJson(file: string, value: unknown, sync: boolean): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = await open(temporary, 'w', 0o644);
  try {
    await handle.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    if (sync) {
      await handle.sync();
    }
  } finally {
    await handle.close();
  }

  await rename(temporary, file);
  if (sync) {
    await syncDir(path.dirname(file));
  }
}

export async function readJson<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }

    throw error;
  }

  return JSON.parse(text) as T;
}

export async function removeDurably(file: string): Promise<void> {
  await rm(file, { force: true });
  await syncDir(path.dirname(file)).catch(() => undefined);
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
