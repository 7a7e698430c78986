import assert from 'node:assert/strict';
import { copyFile, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { makeTempDir } from '../helpers/temp.js';
import { ctrvolBinary } from './rig.js';

describe('the single-file build', () => {
  test('is executable, starts with a node shebang, and runs with no node_modules beside it', async (t) => {
    const temp = await makeTempDir('ctrvol-bundle');
    t.after(temp.cleanup);
    const alone = path.join(temp.path, 'ctrvol');
    await copyFile(ctrvolBinary, alone);
    await execa('chmod', ['755', alone]);
    const { version } = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };

    const head = (await readFile(alone, 'utf8')).split('\n')[0];
    const versionRun = await execa(alone, ['--version'], { cwd: temp.path, reject: false });
    const helpRun = await execa(alone, ['--help'], { cwd: temp.path, reject: false });
    const statusRun = await execa(alone, ['status', '--root', temp.path], { reject: false });

    assert.equal(head, '#!/usr/bin/env node');
    assert.ok(((await stat(ctrvolBinary)).mode & 0o111) !== 0, 'dist/ctrvol.cjs is executable');
    assert.equal(versionRun.stdout, `ctrvol ${version}`);
    assert.equal(helpRun.exitCode, 0);
    assert.match(helpRun.stdout, /Exit codes \(check has its own/);
    assert.equal(statusRun.exitCode, 0, statusRun.stderr);
    assert.match(statusRun.stdout, /not set up on this machine/);
  });

  const usage: [string[], RegExp][] = [
    [['frobnicate'], /^ctrvol: unknown command "frobnicate"; see ctrvol --help$/],
    [['setup', '--bogus'], /^ctrvol: unknown option --bogus for setup; see ctrvol --help$/],
    [
      ['setup', '--verify', 'sometimes'],
      /^ctrvol: --verify: got "sometimes"; allowed: metadata \| content$/,
    ],
    [['status', '--log-format', 'xml'], /^ctrvol: --log-format: got "xml"; allowed: text \| json$/],
    [
      ['setup', '--root', 'relative'],
      /^ctrvol: --root: got "relative"; allowed: an absolute path$/,
    ],
    [[], /Usage: ctrvol <command>/],
  ];

  for (const [args, message] of usage) {
    test(`answers "ctrvol ${args.join(' ')}" with exit code 2 and one clear line`, async () => {
      const result = await execa('node', [ctrvolBinary, ...args], { reject: false });

      assert.equal(result.exitCode, 2);
      assert.match(args.length === 0 ? result.stdout : result.stderr.trim(), message);
    });
  }

  test('finds the command word after options as well as before them', async (t) => {
    const temp = await makeTempDir('ctrvol-bundle');
    t.after(temp.cleanup);

    const result = await execa('node', [ctrvolBinary, '--root', temp.path, 'status'], {
      reject: false,
    });

    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /not set up on this machine/);
  });

  test('refuses an unknown CTRVOL_LOG_LEVEL with exit code 2 rather than a stack trace', async () => {
    const result = await execa('node', [ctrvolBinary, 'status'], {
      reject: false,
      env: { CTRVOL_LOG_LEVEL: 'loud' },
    });

    assert.equal(result.exitCode, 2);
    assert.equal(
      result.stderr.trim(),
      'ctrvol: CTRVOL_LOG_LEVEL: got "loud"; allowed: debug | info | notice | warn | error | silent',
    );
  });

  test('reports a missing config file with exit code 2, naming the file', async (t) => {
    const temp = await makeTempDir('ctrvol-bundle');
    t.after(temp.cleanup);
    const missing = path.join(temp.path, 'nope.yaml');

    const result = await execa(
      'node',
      [ctrvolBinary, 'setup', '--config', missing, '--root', temp.path],
      { reject: false },
    );

    assert.equal(result.exitCode, 2);
    assert.equal(
      result.stderr.trim(),
      `ctrvol: config ${missing}: no such file; pass --config FILE`,
    );
  });

  test('writes JSON log lines with --log-format json', async (t) => {
    const temp = await makeTempDir('ctrvol-bundle');
    t.after(temp.cleanup);
    const config = path.join(temp.path, 'config.yaml');
    await writeFile(config, 'volume:\n  device: /dev/ctrvol-test-absent\n  waitSeconds: 0\n');

    const result = await execa(
      'node',
      [ctrvolBinary, 'setup', '--config', config, '--root', temp.path, '--log-format', 'json'],
      { reject: false },
    );

    assert.equal(result.exitCode, 3);
    const records = result.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { step?: string; level: number; msg: string });
    const failed = records.find((record) => record.level === 50);
    assert.equal(failed?.step, 'resolve');
    assert.match(failed?.msg ?? '', /no such device/);
  });

  test('keeps a V8 code cache under --root, reuses it, and replaces one it cannot use', async (t) => {
    const temp = await makeTempDir('ctrvol-bundle');
    t.after(temp.cleanup);
    const cacheDir = path.join(temp.path, 'var/cache/ctrvol');
    const status = () => execa('node', [ctrvolBinary, 'status', '--root', temp.path]);
    const listCache = async () =>
      (await readdir(cacheDir)).filter((name) => name.endsWith('.v8cache'));

    const first = await status();
    const [file = ''] = await listCache();
    assert.ok(file.startsWith('commands-'), `a cache for the commands bundle: ${file}`);
    const cacheFile = path.join(cacheDir, file);
    const written = await stat(cacheFile);

    // V8 took the cache: nothing is written again, and the command says the same.
    const second = await status();
    assert.equal(second.stdout, first.stdout);
    assert.equal((await stat(cacheFile)).mtimeMs, written.mtimeMs);

    // A cache that cannot be used is compiled around and replaced. V8 itself checks only the
    // header: a damaged body (here 4 KiB zeroed past it) used to crash the process outright.
    const good = await readFile(cacheFile);
    const damaged = Buffer.from(good);
    damaged.fill(0, 4096, 8192);
    for (const bad of [Buffer.alloc(written.size, 7), damaged]) {
      await writeFile(cacheFile, bad);
      const again = await status();
      assert.equal(again.stdout, first.stdout);
      assert.notDeepEqual(await readFile(cacheFile), bad, 'the damaged cache was replaced');
    }

    assert.deepEqual(await listCache(), [file]);

    // Whatever sits in the cache's place is read with care: a FIFO would block a plain read.
    await rm(cacheFile);
    await execa('mkfifo', [cacheFile]);
    const withFifo = await execa('node', [ctrvolBinary, 'status', '--root', temp.path], {
      timeout: 30_000,
    });
    assert.equal(withFifo.stdout, first.stdout);

    // The daemon keeps none: its memory counts, not its start-up.
    await rm(cacheDir, { recursive: true });
    const config = path.join(temp.path, 'config.yaml');
    const socket = path.join(temp.path, 'no-containerd.sock');
    await writeFile(
      config,
      `volume:\n  device: /dev/ctrvol-test-absent\ncontainerd:\n  socket: ${socket}\n`,
    );
    const monitor = await execa(
      'node',
      [ctrvolBinary, 'monitor', '--once', '--config', config, '--root', temp.path],
      { reject: false },
    );
    assert.equal(monitor.exitCode, 0, monitor.stderr);
    assert.equal(await stat(cacheDir).catch(() => undefined), undefined);
  });
});
