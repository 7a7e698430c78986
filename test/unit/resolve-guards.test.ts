import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../../agent/log/logger.js';
import { resolveStep } from '../../agent/setup/steps/resolve.js';
import { buildHostTree, mountLine, type FixtureDevice } from './fixtures/host-tree.js';
import { makeContext } from './fixtures/context.js';

const disks: FixtureDevice[] = [
  { name: 'nvme0n1', majorMinor: '259:0' },
  { name: 'nvme0n1p1', majorMinor: '259:1', parent: 'nvme0n1' },
  { name: 'nvme0n1p2', majorMinor: '259:8', parent: 'nvme0n1' },
  { name: 'nvme1n1', majorMinor: '259:2' },
  { name: 'nvme2n1', majorMinor: '259:3', holders: ['md127'] },
  { name: 'nvme3n1', majorMinor: '259:4' },
  { name: 'nvme4n1', majorMinor: '259:5' },
  { name: 'nvme5n1', majorMinor: '259:6' },
  { name: 'nvme5n1p1', majorMinor: '259:7', parent: 'nvme5n1' },
  { name: 'nvme6n1', majorMinor: '259:9' },
];

const mountinfo =
  mountLine(20, '259:1', '/', '/dev/nvme0n1p1') +
  mountLine(30, '259:4', '/mnt/data', '/dev/nvme3n1') +
  mountLine(31, '259:2', '/var/lib/containerd', '/dev/nvme1n1');

// Every refusal happens on sysfs, mountinfo and /proc/swaps alone, before any command runs:
// the fixture runner fails the test if one is attempted.
const refusals = [
  { device: '/dev/nvme0n1', message: /holds the root filesystem/ },
  { device: '/dev/nvme0n1p1', message: /holds the root filesystem/ },
  // Blank, and not the root partition, but on the root disk.
  { device: '/dev/nvme0n1p2', message: /is a partition of nvme0n1, the root disk/ },
  { device: '/dev/nvme5n1p1', message: /is a partition of nvme5n1; ctrvol uses whole, blank/ },
  { device: '/dev/nvme2n1', message: /is in use by md127/ },
  { device: '/dev/nvme3n1', message: /is mounted at \/mnt\/data/ },
  { device: '/dev/nvme4n1', message: /is in use as swap/ },
  { device: '/dev/nvme5n1', message: /has partitions \(nvme5n1p1\)/ },
  {
    device: '/dev/nvme9n1',
    message:
      /^\/dev\/nvme9n1: no such device; seen: nvme0n1 \(1\.0 GiB, .*root\); nvme1n1 .*mapping name\)$/,
  },
];

describe('the resolve step refuses devices ctrvol must not touch', () => {
  for (const refusal of refusals) {
    test(`refuses ${refusal.device} with exit code 3 and runs no command`, async (t) => {
      const fixture = await buildHostTree(
        disks,
        mountinfo,
        'Filename\tType\tSize\tUsed\tPriority\n/dev/nvme4n1 partition 1024 0 -2\n',
      );
      t.after(fixture.cleanup);
      const { context } = makeContext({
        host: fixture.host,
        root: fixture.dir,
        configYaml: `volume: {device: ${refusal.device}, waitSeconds: 0, mountPoint: /srv/ctr}`,
      });

      await assert.rejects(resolveStep.run(context, context.logger), (error: Error) => {
        assert.match(error.message, refusal.message);
        assert.equal((error as { exitCode?: number }).exitCode, 3);
        return true;
      });
    });
  }

  test('refuses a mount point that another device already occupies', async (t) => {
    const fixture = await buildHostTree(disks, mountinfo);
    t.after(fixture.cleanup);
    const { context } = makeContext({
      host: fixture.host,
      root: fixture.dir,
      configYaml: 'volume: {device: /dev/nvme6n1, waitSeconds: 0}',
    });
    // nvme6n1 is a blank whole disk, so only the occupant check trips.

    await assert.rejects(
      resolveStep.run(context, createLogger({ format: 'text', level: 'silent' })),
      {
        message: /\/var\/lib\/containerd already has \/dev\/nvme1n1 \(xfs\) mounted on it/,
        exitCode: 3,
      },
    );
  });
});
