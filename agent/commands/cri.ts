import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/schema.js';
import type { CriClient } from '../cri/client.js';
import { isEnvironmentError } from '../errors.js';
import type { Logger } from '../log/logger.js';

/**
 * Opens a CRI client on containerd's socket. The CRI client pulls in gRPC and protobufjs, so it
 * is loaded here, on first use, and never by `ctrvol --version` or `ctrvol setup`; the build
 * keeps it as text until then (scripts/build.mjs).
 *
 * With waitSeconds, a containerd that is not answering yet (its unit turns active before its
 * socket does) is retried until the bound, then reported as the environment error it is.
 */
export async function connectCri(
  config: Config,
  logger: Logger,
  waitSeconds = 0,
): Promise<CriClient> {
  const { createCriClient } = await import('../cri/index.js');
  const deadline = Date.now() + waitSeconds * 1000;
  let waited = false;
  for (;;) {
    let client: CriClient | undefined;
    try {
      client = await createCriClient({ socket: config.containerd.socket, logger });
      await client.version();
      return client;
    } catch (error) {
      client?.close();
      if (!isEnvironmentError(error) || Date.now() >= deadline) {
        throw error;
      }

      if (!waited) {
        logger.info({ socket: config.containerd.socket, waitSeconds }, 'waiting for containerd');
        waited = true;
      }

      await sleep(1000);
    }
  }
}
