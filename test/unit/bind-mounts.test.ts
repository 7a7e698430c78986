import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { formatStatus, type StatusReport } from '../../agent/commands/status.js';
import { getBindState, isOwnBind } from '../../agent/host/bind-mounts.js';
import { parseMountInfo } from '../../agent/host/mountinfo.js';
import type { Volume } from '../../agent/setup/context.js';
import { checkBindTargets } from '../../agent/setup/steps/bind.js';
import { getBindFolder, getBindMarkers } from '../../agent/state/paths.js';
import { renderContainerdDropIn, renderKubeletDropIn } from '../../agent/systemd/units.js';
import { buildHostTree, type FixtureHost } from './fixtures/host-tree.js';
import { makeContext } from './fixtures/context.js';

/** A mountinfo line with the root field a bind mount has. */
const line = (id: number, majorMinor: string, root: string, at: string, source: string) =>
  `${id} 1 ${majorMinor} ${root} ${at} rw,noatime shared:${id} - ${
    source === 'tmpfs' ? 'tmpfs' : 'xfs'
  } ${source} rw\n`;

const volume = '259:2';
const mountinfo =
  line(20, '259:1', '/', '/', '/dev/nvme0n1p1') +
  line(31, volume, '/', '/var/lib/containerd', '/dev/nvme1n1') +
  line(32, volume, '/ctrvol-bind/var/lib/kubelet', '/var/lib/kubelet', '/dev/nvme1n1') +
  line(33, volume, '/somewhere/else', '/var/log/pods', '/dev/nvme1n1') +
  line(34, '259:3', '/ctrvol-bind/srv/data', '/srv/data', '/dev/nvme2n1') +
  line(35, volume, '/ctrvol-bind/opt/cache', '/opt/cache', '/dev/nvme1n1') +
  line(36, '0:50', '/', '/opt/cache', 'tmpfs');

describe('bind mounts in mountinfo', () => {
  const mounts = parseMountInfo(mountinfo);

  test("a directory bound from its own folder on this volume is ctrvol's", () => {
    assert.equal(getBindState(mounts, '/var/lib/kubelet', volume).kind, 'bound');
  });

  test('a directory with nothing mounted on it is unbound', () => {
    assert.deepEqual(getBindState(mounts, '/var/lib/other', volume), { kind: 'unbound' });
  });

  const occupied: [string, string][] = [
    ['/var/log/pods', 'another folder of the same volume'],
    ['/srv/data', 'the right folder name on another device'],
    ['/var/lib/containerd', 'the volume itself'],
    ['/opt/cache', 'a tmpfs stacked over its bind'],
  ];
  for (const [directory, why] of occupied) {
    test(`${directory} is occupied: ${why}`, () => {
      assert.equal(getBindState(mounts, directory, volume).kind, 'occupied');
    });
  }

  test("isOwnBind without device numbers accepts any of ctrvol's layout, for the resolve step", () => {
    const own = mounts.filter((entry) => isOwnBind(entry)).map((entry) => entry.mountPoint);
    assert.deepEqual(own, ['/var/lib/kubelet', '/srv/data', '/opt/cache']);
  });
});

describe('the layout on the volume', () => {
  test('each directory lives in ctrvol-bind/ under its own absolute path', () => {
    assert.equal(getBindFolder('/var/lib/kubelet'), 'ctrvol-bind/var/lib/kubelet');
  });

  test('records of directories that differ only by "/" and "-" never share a name', () => {
    const names = ['/var/lib/a-b', '/var/lib/a/b', '/var/lib-a/b'].map(
      (directory) => getBindMarkers(directory).copied,
    );
    assert.equal(new Set(names).size, names.length);
    assert.ok(
      names.every((name) => name.startsWith('.ctrvol/bind/') && !name.slice(13).includes('/')),
    );
    assert.notEqual(getBindMarkers('/x').copied, getBindMarkers('/x').copyStarted);
  });
});

describe('the kubelet drop-in', () => {
  test('has the dependency of containerd for each onFailure, ordered after setup', () => {
    for (const [onFailure, dependency] of [
      ['block', 'Requires'],
      ['rootDisk', 'Wants'],
    ] as const) {
      const text = renderKubeletDropIn(onFailure);
      assert.match(text, new RegExp(`^\\[Unit\\]\\n${dependency}=ctrvol-setup\\.service\\n`, 'm'));
      assert.match(text, /^After=ctrvol-setup\.service\n$/m);
      assert.ok(text.endsWith('\n'));
    }
  });

  test("leaves containerd's drop-in word for word as it was", () => {
    assert.equal(
      renderContainerdDropIn('block'),
      '# Written by ctrvol setup; rewritten on every run.\n' +
        '# containerd must not start unless its volume is mounted.\n' +
        '[Unit]\nRequires=ctrvol-setup.service\nAfter=ctrvol-setup.service\n',
    );
  });
});

describe('checkBindTargets', () => {
  async function setUp(t: { after(fn: () => Promise<void>): void }, mounts: string) {
    const top = await mkdtemp(path.join(tmpdir(), 'ctrvol-binds-'));
    t.after(() => rm(top, { recursive: true, force: true }));
    const fixture = await buildHostTree([], mounts.replaceAll('TOP', top));
    t.after(fixture.cleanup);
    return { top, fixture };
  }

  function contextFor(fixture: FixtureHost, directories: string[]) {
    const { context } = makeContext({
      host: fixture.host,
      root: fixture.dir,
      configYaml: `volume: {device: /dev/nvme1n1, bindMounts: [${directories.join(', ')}]}`,
    });
    context.volume = { device: { majorMinor: volume } } as Volume;
    return context;
  }

  test('returns what is still to bind, in config order, skipping what is bound', async (t) => {
    const { top, fixture } = await setUp(
      t,
      line(40, volume, '/ctrvol-bindTOP/bound', 'TOP/bound', '/dev/nvme1n1'),
    );
    await mkdir(path.join(top, 'plain'));
    await mkdir(path.join(top, 'bound'));
    const context = contextFor(fixture, [`${top}/plain`, `${top}/bound`, `${top}/missing/dir`]);

    assert.deepEqual(await checkBindTargets(context), [`${top}/plain`, `${top}/missing/dir`]);
  });

  const refusals: [string, string, (top: string) => Promise<void>, RegExp][] = [
    [
      'something else mounted on it',
      line(40, '0:51', '/', 'TOP/d', 'tmpfs'),
      async () => {},
      /TOP\/d already has tmpfs \(tmpfs\) mounted on it/,
    ],
    [
      'mounts beneath it',
      line(40, '0:51', '/', 'TOP/d/pods/1/volumes/a', 'tmpfs') +
        line(41, '0:52', '/', 'TOP/d/pods/1/volumes/b', 'tmpfs') +
        line(42, '0:53', '/', 'TOP/d/pods/2/volumes/c', 'tmpfs') +
        line(43, '0:54', '/', 'TOP/d/pods/3/volumes/d', 'tmpfs'),
      async () => {},
      /something is mounted beneath TOP\/d: TOP\/d\/pods\/1\/volumes\/a, .* and 1 more/,
    ],
    ['a symlink', '', async (top) => symlink(top, `${top}/d`), /TOP\/d is a symlink/],
    [
      'a file',
      '',
      async (top) => writeFile(`${top}/d`, ''),
      /TOP\/d exists and is not a directory/,
    ],
  ];
  for (const [name, mounts, prepare, message] of refusals) {
    test(`refuses a directory with ${name}, with exit code 3`, async (t) => {
      const { top, fixture } = await setUp(t, mounts);
      await prepare(top);
      const context = contextFor(fixture, [`${top}/d`]);

      await assert.rejects(checkBindTargets(context), (error: Error) => {
        assert.match(error.message.replaceAll(top, 'TOP'), message);
        assert.equal((error as { exitCode?: number }).exitCode, 3);
        return true;
      });
    });
  }
});

describe('ctrvol status with bind mounts', () => {
  test('shows each directory, its folder and whether it is bound', () => {
    const report: StatusReport = {
      setUp: true,
      state: {
        version: 1,
        uuid: 'u',
        device: '/dev/nvme1n1',
        filesystem: 'xfs',
        label: 'ctrvol',
        mountPoint: '/var/lib/containerd',
        setupAt: '2024-01-01T00:00:00.000Z',
        hiddenBytes: 0,
        bindMounts: ['/var/lib/kubelet', '/var/log/pods'],
      },
      mounted: true,
      mountedInstead: undefined,
      usage: undefined,
      monitor: undefined,
      bindMounts: [
        {
          directory: '/var/lib/kubelet',
          folder: 'ctrvol-bind/var/lib/kubelet',
          bound: true,
          mountedInstead: undefined,
        },
        {
          directory: '/var/log/pods',
          folder: 'ctrvol-bind/var/log/pods',
          bound: false,
          mountedInstead: 'tmpfs',
        },
      ],
    };

    const text = formatStatus(report);

    assert.match(
      text,
      /\n {2}bind {8}\/var\/lib\/kubelet from ctrvol-bind\/var\/lib\/kubelet, bound\n/,
    );
    assert.match(
      text,
      /\n {2}bind {8}\/var\/log\/pods from ctrvol-bind\/var\/log\/pods, NOT bound \(tmpfs is\)\n/,
    );
  });
});
