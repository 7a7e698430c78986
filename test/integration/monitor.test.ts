import assert from 'node:assert/strict';
import { mkdir, readFile, stat, statfs, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { SANDBOX_IMAGE, startContainerd } from '../helpers/containerd.js';
import {
  addImages,
  jsonLines,
  makeNode,
  usedPercent,
  writeLastUsed,
  type Node,
} from './node-rig.js';
import { ctrvolBinary } from './rig.js';

/** Replaces the config's prune and monitor sections, keeping the rest. */
async function setSections(node: Node, yaml: string): Promise<void> {
  const config = await readFile(node.rig.configFile, 'utf8');
  const kept = config.split(/^(?=prune:|monitor:)/m)[0] ?? config;
  await node.rig.writeConfig(`${kept.trimEnd()}\n${yaml}`);
}

async function readMonitorState(node: Node): Promise<Record<string, any>> {
  return JSON.parse(
    await readFile(path.join(node.rig.root, 'var/lib/ctrvol/monitor.json'), 'utf8'),
  );
}

interface PrometheusFamily {
  name: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}

/** The exposition-format parser (a port of the Prometheus client's); it ships no types. */
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (
  text: string,
) => PrometheusFamily[];

const levelOf = (line: Record<string, unknown>) => Number(line.level);

describe('ctrvol monitor', () => {
  test('prunes down to the low mark when a tick finds the volume above the high mark', async (t) => {
    const node = await makeNode(t);
    const fillers = await addImages(node, 10, 10 << 20);
    await writeLastUsed(node, fillers);
    const start = await usedPercent(node.rig.mountPoint);
    const [high, low] = [start - 5, start - 20];
    await setSections(
      node,
      `prune:\n  minAgeSeconds: 0\n  highPercent: ${high}\n  lowPercent: ${low}\n`,
    );

    const result = await node.ctrvol('monitor', '--once');

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /^tick ok: root [\d.]+%, volume [\d.]+%$/);
    assert.ok((await usedPercent(node.rig.mountPoint)) <= low, `still above ${low}%`);
    const state = await readMonitorState(node);
    assert.equal(state.prune.runsTotal, 1);
    assert.equal(state.prune.last.reachedTarget, true);
    assert.ok(state.prune.last.imagesRemoved > 0);
    const left = await node.names();
    assert.ok(left.includes(SANDBOX_IMAGE));
    assert.deepEqual(
      left.filter((name) => name.includes('filler')),
      fillers.slice(state.prune.last.imagesRemoved),
      'the least recently used went first',
    );
  });

  test('logs a warning when containerd is down, carries on, and recovers when it is back', async (t) => {
    const node = await makeNode(t);
    await node.containerd.stop();

    const down = await node.ctrvol('monitor', '--once');
    const again = await startContainerd({
      root: node.rig.mountPoint,
      state: path.join(node.rig.dir, 'state2'),
      dir: path.join(node.rig.dir, 'ctrd2'),
    });
    node.rig.defer(() => again.stop());
    const config = await readFile(node.rig.configFile, 'utf8');
    await node.rig.writeConfig(config.replace(node.containerd.socket, again.socket));
    const back = await node.ctrvol('monitor', '--once');

    assert.equal(down.exitCode, 0, down.stderr);
    assert.match(down.stdout, /^tick had failures/);
    const warning = jsonLines(down.stderr).find((line) => levelOf(line) === 40);
    assert.match(
      String(warning?.msg),
      /containerd is not answering; image records and prune skipped/,
    );
    assert.equal(back.exitCode, 0, back.stderr);
    assert.match(back.stdout, /^tick ok/);
    assert.equal((await readMonitorState(node)).lastTick.succeeded, true);
  });

  test('logs a threshold crossing once, and the return below it once', async (t) => {
    const node = await makeNode(t);
    await addImages(node, 4, 10 << 20);
    const percent = await usedPercent(node.rig.mountPoint);
    const crossings = async () => {
      const result = await node.ctrvol('monitor', '--once');
      assert.equal(result.exitCode, 0, result.stderr);
      return jsonLines(result.stderr)
        .filter((line) => /filesystem is (above|back below)/.test(String(line.msg)))
        .map((line) => `${levelOf(line) === 40 ? 'warn' : 'notice'}: ${String(line.msg)}`);
    };

    await setSections(node, `monitor:\n  warnPercent: {root: 99, volume: ${percent - 1}}\n`);
    const first = await crossings();
    const second = await crossings();
    await setSections(node, `monitor:\n  warnPercent: {root: 99, volume: ${percent + 5}}\n`);
    const third = await crossings();
    const fourth = await crossings();

    assert.deepEqual(first, [`warn: the volume filesystem is above ${percent - 1}% full`]);
    assert.deepEqual(second, []);
    assert.deepEqual(third, [`notice: the volume filesystem is back below ${percent + 5}%`]);
    assert.deepEqual(fourth, []);
  });

  test('ends within a second of SIGTERM while ticking every second', async (t) => {
    const node = await makeNode(t);
    await setSections(node, 'monitor:\n  schedule: "* * * * * *"\n');
    const daemon = execa(
      'node',
      [ctrvolBinary, 'monitor', '--root', node.rig.root, '--log-format', 'json', '-v'],
      { reject: false },
    );
    node.rig.defer(async () => daemon.kill('SIGKILL'));
    await sleep(3500);

    const signalled = performance.now();
    daemon.kill('SIGTERM');
    const result = await daemon;
    const stoppedMs = performance.now() - signalled;

    assert.equal(result.exitCode, 0, result.stderr);
    // Not a speed figure: only that SIGTERM ends the daemon at once rather than after a pending
    // timer or tick; the bound is loose enough for a loaded machine.
    assert.ok(stoppedMs < 5000, `took ${Math.round(stoppedMs)} ms to stop`);
    const ticks = jsonLines(result.stderr).filter((line) => line.msg === 'tick done');
    assert.ok(ticks.length >= 2, `${ticks.length} ticks in 3.5 s`);
    assert.ok(jsonLines(result.stderr).some((line) => line.msg === 'monitor stopped'));
  });
  test('plans its schedule without Intl.DateTimeFormat, whose ICU data would stay resident', async (t) => {
    // The build gives node-cron local time from Date (agent/monitor/cron-intl.ts); a build
    // without that plugin would make node-cron call Intl.DateTimeFormat at start and each tick.
    const node = await makeNode(t);
    await setSections(node, 'monitor:\n  schedule: "* * * * * *"\n');
    const spy = path.join(node.rig.dir, 'intl-spy.cjs');
    await writeFile(
      spy,
      [
        'const real = Intl.DateTimeFormat;',
        'Intl.DateTimeFormat = function DateTimeFormat(...args) {',
        "  process.stderr.write('Intl.DateTimeFormat ' + JSON.stringify(args) + '\\n');",
        '  return new real(...args);',
        '};',
      ].join('\n'),
    );
    const daemon = execa(
      'node',
      [
        '--require',
        spy,
        ctrvolBinary,
        'monitor',
        '--root',
        node.rig.root,
        '--log-format',
        'json',
        '-v',
      ],
      { reject: false },
    );
    node.rig.defer(async () => daemon.kill('SIGKILL'));
    await sleep(2500);
    daemon.kill('SIGTERM');
    const result = await daemon;

    assert.equal(result.exitCode, 0, result.stderr);
    const ticks = jsonLines(result.stderr).filter((line) => line.msg === 'tick done');
    assert.ok(ticks.length >= 2, `${ticks.length} ticks in 2.5 s`);
    assert.doesNotMatch(result.stderr, /Intl\.DateTimeFormat/);
  });
});

describe("the monitor's metrics", () => {
  test('a tick writes a Prometheus textfile and an EMF line that parse, with the right values', async (t) => {
    const node = await makeNode(t);
    const textfile = path.join(node.rig.dir, 'textfile/ctrvol.prom');
    const emfFile = path.join(node.rig.dir, 'emf/metrics.log');
    await mkdir(path.dirname(textfile));
    await mkdir(path.dirname(emfFile));
    await setSections(
      node,
      [
        'monitor:',
        '  metrics:',
        `    textfile: ${textfile}`,
        `    emfFile: ${emfFile}`,
        '    namespace: EKS/Nodes',
        '    dimensions: {ClusterName: test}',
        '',
      ].join('\n'),
    );

    const result = await node.ctrvol('monitor', '--once');

    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal((await stat(textfile)).mode & 0o777, 0o644);
    const families = parsePrometheus(await readFile(textfile, 'utf8'));
    const sample = (name: string, filesystem?: string) =>
      families
        .find((family) => family.name === name)
        ?.metrics.find(
          (metric) => filesystem === undefined || metric.labels?.filesystem === filesystem,
        );
    assert.equal(sample('ctrvol_volume_mounted')?.value, '1');
    const ratio = Number(sample('ctrvol_filesystem_usage_ratio', 'containerd')?.value);
    // As the kubelet counts it: what is not available to an ordinary writer is used.
    const fs = await statfs(node.rig.mountPoint);
    assert.ok(Math.abs(ratio - (fs.blocks - fs.bavail) / fs.blocks) < 0.01, String(ratio));
    assert.equal(sample('ctrvol_setup_success')?.value, '1');
    assert.equal(sample('ctrvol_last_tick_success')?.value, '1');
    const lines = (await readFile(emfFile, 'utf8')).trim().split('\n');
    const emf = JSON.parse(lines[0] ?? '{}') as Record<string, any>;
    assert.equal(emf._aws.CloudWatchMetrics[0].Namespace, 'EKS/Nodes');
    assert.deepEqual(emf._aws.CloudWatchMetrics[0].Dimensions, [['ClusterName']]);
    assert.equal(emf.ClusterName, 'test');
    assert.equal(typeof emf.ContainerdVolumeUtilization, 'number');
    assert.equal(typeof emf.RootVolumeUtilization, 'number');
  });
});

describe('ctrvol check, as a node-problem-detector plugin', () => {
  async function check(node: Node) {
    const result = await execa('node', [ctrvolBinary, 'check', '--root', node.rig.root], {
      reject: false,
      env: { CTRVOL_LOG_LEVEL: 'silent' },
    });
    const first = result.stdout.split('\n')[0] ?? '';
    assert.ok(first.length < 80, `first line too long: ${first}`);
    return { code: result.exitCode, first, whole: result.stdout };
  }

  test('exits 0 on a healthy node, 1 on each problem, and 2 when it cannot tell', async (t) => {
    const node = await makeNode(t);

    const healthy = await check(node);
    await node.containerd.ctr(['-n', 'k8s.io', 'images', 'rm', '--sync', SANDBOX_IMAGE]);
    const noPause = await check(node);
    await node.containerd.stop();
    const noContainerd = await check(node);
    await execa('mount', ['-o', 'remount,ro', node.rig.mountPoint]);
    const readOnly = await check(node);
    await execa('umount', [node.rig.mountPoint]);
    const unmounted = await check(node);
    await node.rig.writeConfig('volume: {device: /dev/xvdb, filesystem: zfs}\n');
    const badConfig = await check(node);

    assert.equal(healthy.code, 0, healthy.first);
    assert.match(healthy.first, /^ok: .* mounted, [\d.]+% used$/);
    assert.equal(noPause.code, 1, noPause.first);
    assert.match(noPause.first, /sandbox image localhost\/kubernetes\/pause:latest is missing/);
    assert.equal(noContainerd.code, 2, noContainerd.first);
    assert.match(noContainerd.first, /^cannot tell: containerd: /);
    assert.equal(readOnly.code, 1, readOnly.first);
    assert.match(readOnly.first, /read-only/);
    assert.equal(unmounted.code, 1, unmounted.first);
    assert.match(unmounted.first, /^the volume is not mounted at /);
    assert.equal(badConfig.code, 2, badConfig.first);
    assert.match(badConfig.first, /^cannot tell: /);
    assert.match(badConfig.whole, /volume\.filesystem: got "zfs"/);
  });
});
