import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { makeRig, type Rig } from '../../test/integration/rig.js';
import { mountsOfDevice } from '../../test/helpers/loop.js';

export const deviceBytes = 8 * 1024 * 1024 * 1024;

/**
 * One run's throwaway machine: the integration tests' rig (a fresh sparse 8 GiB loop device, a
 * root and a mount point in a temp dir, a ctrvol config naming only those) with a copy of the
 * seeded store at the mount point. Every run gets a new one, so each starts from the same input
 * and writes to a device none of whose blocks the backing file has allocated yet.
 */
export interface Sandbox {
  rig: Rig;
  /** Where the shell baseline mounts the volume while copying, as ctrvol uses its staging dir. */
  staging: string;
  /** The recipe's "aside" directory: a sibling of the mount point on the root disk. */
  aside: string;
  dispose(): Promise<void>;
}

export async function makeSandbox(template: string): Promise<Sandbox> {
  // makeRig registers its cleanup as a node:test after-hook; outside a test, the bench runs it.
  const hooks: (() => Promise<void>)[] = [];
  const dispose = async (): Promise<void> => {
    for (const hook of hooks.splice(0).reverse()) {
      await hook();
    }
  };

  try {
    const rig = await makeRig({ after: (fn) => hooks.push(fn) }, { sizeBytes: deviceBytes });
    const staging = path.join(rig.dir, 'staging');
    await mkdir(staging);
    await execa('cp', ['-a', `${template}/.`, rig.mountPoint], { stdin: 'ignore' });
    // The copy's pages stay in the page cache (every variant reads a warm source), but none may
    // still be dirty: writeback of the input must not land inside the next timed run.
    await execa('sync', ['--file-system', rig.mountPoint], { stdin: 'ignore' });
    return { rig, staging, aside: `${rig.mountPoint}.aside`, dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** Entries below a directory, leaving out what a filesystem or ctrvol adds at its top. */
export async function countEntries(dir: string): Promise<number> {
  const { stdout } = await execa(
    'find',
    [dir, '-xdev', '-mindepth', '1'].concat(
      ['(', '-path', `${dir}/lost+found`, '-o', '-path', `${dir}/.ctrvol`, ')'],
      ['-prune', '-o', '-printf', 'x'],
    ),
    { stdin: 'ignore', stripFinalNewline: false },
  );
  return stdout.length;
}

/**
 * Each variant must end with the volume mounted at the mount point holding the whole store; a
 * run that got there by doing less would make the comparison meaningless.
 */
export async function checkOutcome(sandbox: Sandbox, expectedEntries: number): Promise<void> {
  const { rig } = sandbox;
  const mounts = await mountsOfDevice(rig.device.path);
  if (!mounts.includes(rig.mountPoint)) {
    throw new Error(`${rig.device.path} is not mounted at ${rig.mountPoint} after the run`);
  }

  const entries = await countEntries(rig.mountPoint);
  if (entries !== expectedEntries) {
    throw new Error(`the volume holds ${entries} entries, the store ${expectedEntries}`);
  }
}
