import { readdirSync, readFileSync } from 'node:fs';
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
export function findShims(procDir: string, socket: string): number[] {
  // Synchronous: /proc answers from memory, and a node runs hundreds of processes, each read
  // through the thread pool costing ten times the read itself.
  const pids: number[] = [];
  for (const entry of readdirSync(procDir)) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }

    let argv: string[];
    try {
      argv = readFileSync(path.join(procDir, entry, 'cmdline'), 'utf8').split('\0');
    } catch {
      // The process ended between the listing and the read.
      continue;
    }

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
