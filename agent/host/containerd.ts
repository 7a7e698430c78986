import { readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';

/**
 * Whether a containerd answers on a socket. A stale socket file from a dead containerd refuses
 * the connection, so only a live one counts.
 */
export function isSocketLive(socket: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const client = connect(socket);
    const done = (live: boolean) => {
      client.destroy();
      resolve(live);
    };
    client.setTimeout(timeoutMs, () => done(true));
    client.once('connect', () => done(true));
    client.once('error', () => done(false));
  });
}

/**
 * containerd's shims outlive a `systemctl stop containerd` and keep their containers running, with
 * overlay mounts on the store. Each shim names the containerd socket it serves in its arguments.
 */
export async function findShims(procDir: string, socket: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir(procDir)) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }

    const argv = await readFile(path.join(procDir, entry, 'cmdline'), 'utf8').then(
      (text): string[] => text.split('\0'),
      (): string[] => [],
    );
    const address = argv.indexOf('-address');
    if (
      path.basename(argv[0] ?? '').startsWith('containerd-shim') &&
      argv[address + 1] === socket
    ) {
      pids.push(Number(entry));
    }
  }

  return pids;
}
