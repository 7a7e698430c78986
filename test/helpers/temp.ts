import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { unmountAllUnder } from './mounts.js';

export interface TempDir {
  path: string;
  cleanup(): Promise<void>;
}

/**
 * A fresh directory under the system temp dir. The path is kept short on purpose: containerd
 * puts its unix socket below it, and socket paths are limited to 107 bytes.
 */
export async function makeTempDir(prefix: string): Promise<TempDir> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `${prefix.replace(/-+$/, '')}-`));
  let done = false;
  return {
    path: dir,
    async cleanup() {
      if (done) return;
      // A recursive rm walks into mount points and would delete whatever a leftover mount
      // exposes, so anything a test mounted in here goes first. Only this run can have mounted
      // anything below a directory it just created.
      await unmountAllUnder([dir]);
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
      done = true;
    },
  };
}

/** What cleanupStack needs from a node:test context. */
export interface AfterHook {
  after(fn: () => Promise<void>): void;
}

/**
 * node:test runs `t.after` hooks in the order they were registered, which would remove a temp
 * dir before stopping the containerd living in it. This returns a `defer` whose cleanups run
 * last-registered first, each one even if an earlier one threw; the first error is rethrown.
 */
export function cleanupStack(t: AfterHook): (fn: () => unknown) => void {
  const stack: (() => unknown)[] = [];
  t.after(async () => {
    const errors: unknown[] = [];
    for (const fn of stack.reverse()) {
      try {
        await fn();
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'several cleanups failed');
  });
  return (fn) => {
    stack.push(fn);
  };
}
