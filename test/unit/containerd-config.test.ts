import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import {
  defaultSandboxImage,
  findSandboxImage,
  readContainerdConfig,
  settingsFromStatusInfo,
} from '../../agent/containerd/sandbox-image.js';
import { createCriClient } from '../../agent/cri/client.js';
import { EnvironmentError } from '../../agent/errors.js';
import { startFakeRuntime } from '../helpers/fake-runtime.js';
import { makeTempDir } from '../helpers/temp.js';

/** Writes `files` (path relative to a fresh temp dir → contents) and returns the dir. */
async function fixture(t: TestContext, files: Record<string, string>): Promise<string> {
  const temp = await makeTempDir('ctrvol-ctrd-config');
  t.after(temp.cleanup);
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(temp.path, name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, text);
  }
  return temp.path;
}

const CRI_V2 = '[plugins."io.containerd.grpc.v1.cri"]';

function toml(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

// What nodeadm writes on AL2023 for containerd 1.7, cut down to the keys that matter here.
const AL2023_V2 = `
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
imports = ["/etc/containerd/config.d/*.toml"]

[grpc]
address = "/run/containerd/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
sandbox_image = "localhost/kubernetes/pause"

[plugins."io.containerd.grpc.v1.cri".containerd]
default_runtime_name = "runc"
`;

const CONTAINERD2_V3 = `
version = 3
root = "/data/containerd"

[plugins."io.containerd.cri.v1.images"]
snapshotter = "overlayfs"

[plugins."io.containerd.cri.v1.images".pinned_images]
sandbox = "localhost/kubernetes/pause:latest"
`;

describe("reading containerd's config files", () => {
  test('finds sandbox_image and root in a version 2 file, as containerd 1.x has', async (t) => {
    const dir = await fixture(t, { 'config.toml': AL2023_V2 });

    const view = await readContainerdConfig(path.join(dir, 'config.toml'));

    assert.equal(view.exists, true);
    assert.equal(view.version, 2);
    assert.equal(view.sandboxImage, 'localhost/kubernetes/pause');
    assert.equal(view.sandboxImageFile, path.join(dir, 'config.toml'));
    assert.equal(view.root, '/var/lib/containerd');
  });

  test('finds pinned_images.sandbox in a version 3 file as containerd 2.x writes it', async (t) => {
    const dir = await fixture(t, { 'config.toml': CONTAINERD2_V3 });

    const view = await readContainerdConfig(path.join(dir, 'config.toml'));

    assert.equal(view.version, 3);
    assert.equal(view.sandboxImage, 'localhost/kubernetes/pause:latest');
    assert.equal(view.root, '/data/containerd');
  });

  test('ignores a leftover sandbox_image in a version 3 file, as 2.x does', async (t) => {
    const dir = await fixture(t, {
      'config.toml': `version = 3\n[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "old"\n`,
    });

    const view = await readContainerdConfig(path.join(dir, 'config.toml'));

    assert.equal(view.sandboxImage, undefined);
  });

  test('reads a version 1 file, whose plugins go by short names', async (t) => {
    const dir = await fixture(t, {
      'config.toml': `[plugins.cri]\nsandbox_image = "k8s.gcr.io/pause:3.2"\n`,
    });

    const view = await readContainerdConfig(path.join(dir, 'config.toml'));

    assert.equal(view.version, 1);
    assert.equal(view.sandboxImage, 'k8s.gcr.io/pause:3.2');
    assert.equal(view.root, undefined);
  });

  test('treats a missing main file as all defaults, as containerd does', async (t) => {
    const dir = await fixture(t, {});

    const view = await readContainerdConfig(path.join(dir, 'config.toml'));

    assert.deepEqual(view, {
      files: [],
      exists: false,
      version: 1,
      sandboxImage: undefined,
      sandboxImageFile: undefined,
      root: undefined,
    });
  });

  test('follows imports from the importing file, globs sorted, each file once', async (t) => {
    const dir = await fixture(t, {
      'config.toml': toml(
        'version = 2',
        'imports = ["conf.d/*.toml", "extra/root.toml"]',
        'root = "/var/lib/containerd"',
        CRI_V2,
        'sandbox_image = "localhost/kubernetes/pause"',
      ),
      'conf.d/10-first.toml': toml('version = 2', CRI_V2, 'sandbox_image = "first"'),
      'conf.d/20-second.toml': toml(
        'version = 2',
        'imports = ["../config.toml", "../nested/more.toml"]',
        CRI_V2,
        'sandbox_image = "second"',
      ),
      'nested/more.toml': `version = 2\nroot = "/nested/root"\n`,
      'conf.d/ignored.conf': `this is not toml [`,
      'extra/root.toml': `version = 2\nroot = "/extra/root"\n`,
    });
    const main = path.join(dir, 'config.toml');

    const view = await readContainerdConfig(main);

    // Breadth first: the main file's imports, then what those import; config.toml only once.
    assert.deepEqual(view.files, [
      main,
      path.join(dir, 'conf.d/10-first.toml'),
      path.join(dir, 'conf.d/20-second.toml'),
      path.join(dir, 'extra/root.toml'),
      path.join(dir, 'nested/more.toml'),
    ]);
    assert.equal(view.sandboxImage, 'second');
    assert.equal(view.sandboxImageFile, path.join(dir, 'conf.d/20-second.toml'));
    assert.equal(view.root, '/nested/root');
  });

  test('lets a drop-in cri section reset sandbox_image under containerd 1.x only', async (t) => {
    const dir = await fixture(t, {
      'config.toml': toml(
        'version = 2',
        'imports = ["d/*.toml"]',
        CRI_V2,
        'sandbox_image = "localhost/kubernetes/pause"',
      ),
      'd/snapshotter.toml': toml(
        'version = 2',
        '[plugins."io.containerd.grpc.v1.cri".containerd]',
        'snapshotter = "overlayfs"',
      ),
    });
    const main = path.join(dir, 'config.toml');

    const under17 = await readContainerdConfig(main, { containerdVersion: '1.7.24' });
    const under20 = await readContainerdConfig(main, { containerdVersion: 'v2.0.0' });

    // 1.x replaces the whole plugin section with the drop-in's; 2.x merges key by key.
    assert.equal(under17.sandboxImage, undefined);
    assert.equal(under20.sandboxImage, 'localhost/kubernetes/pause');
  });

  test('reads a version 2 drop-in under a version 3 root, as 2.x migrates it', async (t) => {
    const dir = await fixture(t, {
      'config.toml': `${CONTAINERD2_V3}\nimports = ["d/*.toml"]\n`.replace(
        'version = 3',
        'version = 3\nimports = ["d/*.toml"]',
      ),
      'd/pause.toml': toml('version = 2', CRI_V2, 'sandbox_image = "registry.example/pause:1"'),
    });

    const view = await readContainerdConfig(path.join(dir, 'config.toml'));

    assert.equal(view.sandboxImage, 'registry.example/pause:1');
  });

  test('refuses an import that does not exist, since containerd would not start', async (t) => {
    const dir = await fixture(t, { 'config.toml': `version = 2\nimports = ["missing.toml"]\n` });

    await assert.rejects(
      readContainerdConfig(path.join(dir, 'config.toml')),
      (error: unknown) =>
        error instanceof EnvironmentError &&
        error.exitCode === 3 &&
        error.message.includes(path.join(dir, 'missing.toml')),
    );
  });

  test('names the file, line and column of a TOML syntax error', async (t) => {
    const dir = await fixture(t, { 'config.toml': `version = 2\nroot = "/var/lib/containerd\n` });
    const file = path.join(dir, 'config.toml');

    await assert.rejects(readContainerdConfig(file), (error: unknown) => {
      assert.ok(error instanceof EnvironmentError);
      assert.match(error.message, new RegExp(`${file} at line 2, column \\d+`));
      return true;
    });
  });
});

describe("containerd's default sandbox image", () => {
  const table: [string | undefined, number | undefined, string][] = [
    ['1.6.20~ds1', 2, 'registry.k8s.io/pause:3.6'],
    ['v1.7.24', 2, 'registry.k8s.io/pause:3.8'],
    ['1.7.27', undefined, 'registry.k8s.io/pause:3.8'],
    ['v2.0.5', 2, 'registry.k8s.io/pause:3.10'],
    ['2.1.1', 3, 'registry.k8s.io/pause:3.10'],
    [undefined, 2, 'registry.k8s.io/pause:3.8'],
    [undefined, 3, 'registry.k8s.io/pause:3.10'],
  ];
  for (const [containerdVersion, configVersion, expected] of table) {
    const versions = `containerd ${containerdVersion ?? '?'}, config v${configVersion ?? '?'}`;
    test(`is ${expected} for ${versions}`, () => {
      assert.equal(defaultSandboxImage({ containerdVersion, configVersion }), expected);
    });
  }
});

describe('the sandbox image and root from CRI Status', () => {
  test("reads sandboxImage and containerdRootDir from containerd 1.6's verbose config", () => {
    const info = {
      config: JSON.stringify({
        sandboxImage: 'localhost/kubernetes/pause',
        containerdRootDir: '/var/lib/containerd',
        rootDir: '/var/lib/containerd/io.containerd.grpc.v1.cri',
      }),
      golang: '"go1.19.8"',
    };

    assert.deepEqual(settingsFromStatusInfo(info), {
      sandboxImage: 'localhost/kubernetes/pause',
      root: '/var/lib/containerd',
    });
  });

  test('looks for pinned_images.sandbox in case a containerd 2.x puts it there', () => {
    const info = {
      config: JSON.stringify({ pinned_images: { sandbox: 'pause:3.10' }, containerdRootDir: '/r' }),
    };

    assert.deepEqual(settingsFromStatusInfo(info), { sandboxImage: 'pause:3.10', root: '/r' });
  });

  test('gives nothing for a missing or malformed config entry', () => {
    const infos: Record<string, string>[] = [{}, { config: '{not json' }, { config: '"text"' }];
    for (const info of infos) {
      assert.deepEqual(settingsFromStatusInfo(info), { sandboxImage: undefined, root: undefined });
    }
  });
});

describe('finding the sandbox image', () => {
  test('prefers what the running containerd says, normalised', async (t) => {
    const runtime = await startFakeRuntime({
      statusInfo: {
        config: JSON.stringify({ sandboxImage: 'pause:3.9', containerdRootDir: '/mnt/ctrd' }),
      },
    });
    t.after(() => runtime.close());
    const client = await createCriClient({ socket: runtime.socket });
    t.after(() => client.close());

    const found = await findSandboxImage({ client, configPath: '/nonexistent/config.toml' });

    assert.deepEqual(found, {
      name: 'docker.io/library/pause:3.9',
      configured: 'pause:3.9',
      source: 'cri-status',
      root: '/mnt/ctrd',
      rootSource: 'cri-status',
      configFiles: [],
      statusError: undefined,
    });
  });

  test('reads the files when Status leaves the sandbox image out, as 2.x does', async (t) => {
    const dir = await fixture(t, { 'config.toml': CONTAINERD2_V3 });
    const runtime = await startFakeRuntime({
      version: { runtimeVersion: 'v2.1.1' },
      statusInfo: { config: JSON.stringify({ containerdRootDir: '/data/containerd' }) },
    });
    t.after(() => runtime.close());
    const client = await createCriClient({ socket: runtime.socket });
    t.after(() => client.close());

    const found = await findSandboxImage({ client, configPath: path.join(dir, 'config.toml') });

    assert.equal(found.name, 'localhost/kubernetes/pause:latest');
    assert.equal(found.source, 'config');
    assert.equal(found.rootSource, 'cri-status');
    assert.deepEqual(found.configFiles, [path.join(dir, 'config.toml')]);
  });

  test('falls back to the files, and says why, when containerd is not running', async (t) => {
    const dir = await fixture(t, { 'config.toml': AL2023_V2 });
    const runtime = await startFakeRuntime();
    const client = await createCriClient({ socket: runtime.socket, timeoutMs: 2_000 });
    t.after(() => client.close());
    await runtime.close();

    const found = await findSandboxImage({ client, configPath: path.join(dir, 'config.toml') });

    assert.equal(found.name, 'localhost/kubernetes/pause:latest');
    assert.equal(found.source, 'config');
    assert.equal(found.root, '/var/lib/containerd');
    assert.match(found.statusError ?? '', /not answering/);
  });

  test("uses containerd's default for its version when nothing names one", async (t) => {
    const dir = await fixture(t, { 'config.toml': 'version = 2\n' });

    const found = await findSandboxImage({
      configPath: path.join(dir, 'config.toml'),
      containerdVersion: '1.6.20~ds1',
    });

    assert.equal(found.name, 'registry.k8s.io/pause:3.6');
    assert.equal(found.source, 'default');
    assert.equal(found.root, '/var/lib/containerd');
    assert.equal(found.rootSource, 'default');
  });

  test('refuses a sandbox image containerd could not parse, naming the file', async (t) => {
    const dir = await fixture(t, {
      'config.toml': toml('version = 2', CRI_V2, 'sandbox_image = "Pause"'),
    });

    await assert.rejects(
      findSandboxImage({ configPath: path.join(dir, 'config.toml') }),
      (error: unknown) =>
        error instanceof EnvironmentError &&
        error.message.includes(path.join(dir, 'config.toml')) &&
        /lowercase/.test(error.message),
    );
  });
});
