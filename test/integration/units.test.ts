import assert from 'node:assert/strict';
import {
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../agent/config/load.js';
import type { Config } from '../../agent/config/schema.js';
import {
  containerdDropInPath,
  kubeletDropInPath,
  renderContainerdDropIn,
  renderKubeletDropIn,
  setupUnit,
} from '../../agent/systemd/units.js';
import {
  renderStandIn,
  runTool,
  verify,
  writeExecutable,
  type ToolResult,
  type Verdict,
  parseUnit,
  type Directive,
} from '../helpers/systemd.js';
import { makeTempDir, type TempDir } from '../helpers/temp.js';

/**
 * ctrvol-setup.service and the containerd drop-ins that `ctrvol setup` writes, loaded by the same
 * systemd code that loads them at boot: `systemd-analyze verify --root=DIR` inside a temporary
 * root that holds the units, stand-ins for every unit they are ordered against, and an executable
 * at each ExecStart path. Nothing is read from or written to this machine's /etc, /usr or /run,
 * and no systemd manager is needed.
 */

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const unitSourceDir = path.join(repoRoot, 'systemd');
const verifyUnit = 'ctrvol-verify.service';
const installScript = path.join(repoRoot, 'packaging', 'install.sh');
const exampleConfig = path.join(repoRoot, 'packaging', 'config.example.yaml');
const userData = path.join(repoRoot, 'packaging', 'user-data.sh');
const unitDir = 'usr/lib/systemd/system';
const onFailureModes: Config['onFailure'][] = ['block', 'rootDisk'];

// Stand-ins for the units ctrvol-setup meets at boot, with the ordering they have on an AL2023
// EKS node (systemd, cloud-init, amazon-eks-ami). verify loads them with ctrvol's units, so an
// ordering cycle between ctrvol and the real boot shows up here as it would in the journal.
const systemdUnits: Record<string, string[]> = {
  'local-fs.target': ['DefaultDependencies=no'],
  'shutdown.target': ['DefaultDependencies=no'],
  'sysinit.target': ['DefaultDependencies=no', 'Wants=local-fs.target', 'After=local-fs.target'],
  'basic.target': ['Requires=sysinit.target', 'After=sysinit.target'],
  'network.target': [],
  'network-online.target': [],
  'multi-user.target': ['Requires=basic.target', 'After=basic.target'],
  'systemd-udevd.service': ['DefaultDependencies=no', 'Before=sysinit.target'],
  'systemd-udev-trigger.service': [
    'DefaultDependencies=no',
    'Wants=systemd-udevd.service',
    'Before=sysinit.target',
  ],
  'containerd.service': ['After=network.target local-fs.target'],
};

const eksUnits: Record<string, string[]> = {
  'systemd-networkd-wait-online.service': [
    'DefaultDependencies=no',
    'Before=network-online.target',
  ],
  'cloud-init.service': [
    'DefaultDependencies=no',
    'After=systemd-networkd-wait-online.service',
    'Before=network-online.target',
  ],
  // cloud-init's Debian and Ubuntu builds also order cloud-final after multi-user.target; its
  // Amazon Linux build does not, or nodeadm-run (wanted by multi-user.target) would be in a cycle.
  'cloud-final.service': ['After=network-online.target'],
  'nodeadm-config.service': [
    'After=systemd-networkd-wait-online.service',
    'Before=cloud-init.service',
  ],
  'nodeadm-run.service': [
    'After=nodeadm-config.service cloud-final.service',
    'Requires=nodeadm-config.service',
  ],
  'kubelet.service': ['After=containerd.service', 'Wants=containerd.service'],
};

/** The link `systemctl enable` makes, made by hand: the stand-ins have no [Install] section. */
async function wantBy(root: string, target: string, unit: string): Promise<void> {
  const wants = path.join(root, 'etc/systemd/system', `${target}.wants`);
  await mkdir(wants, { recursive: true });
  await rm(path.join(wants, unit), { force: true });
  await symlink(`/${unitDir}/${unit}`, path.join(wants, unit));
}

/** The units of the boot that ctrvol-setup is ordered against, without ctrvol's own files. */
async function addBootUnits(root: string, host: 'eks' | 'plain'): Promise<string[]> {
  const units = host === 'eks' ? { ...systemdUnits, ...eksUnits } : systemdUnits;
  for (const [name, lines] of Object.entries(units)) {
    await mkdir(path.join(root, unitDir), { recursive: true });
    await writeFile(path.join(root, unitDir, name), renderStandIn(name, lines));
  }

  await writeExecutable(path.join(root, 'usr/bin/stand-in'), '#!/bin/sh\nexit 0\n');
  const enabled = ['containerd', 'kubelet', 'nodeadm-config', 'nodeadm-run', 'cloud-final']
    .map((name) => `${name}.service`)
    .filter((name) => name in units);
  for (const unit of enabled) {
    await wantBy(root, 'multi-user.target', unit);
  }

  return Object.keys(units);
}

interface RootOptions {
  host: 'eks' | 'plain';
  onFailure?: Config['onFailure'];
  /** Also the kubelet's drop-in, as setup writes it when volume.bindMounts names directories. */
  kubelet?: boolean;
}

interface NodeRoot {
  root: string;
  // Every unit in the root: verify test-starts each unit named, and reports an ordering cycle
  // only for the units whose start job runs into it.
  units: string[];
}

/**
 * A node's root with ctrvol installed and enabled, and with the containerd drop-in that
 * `ctrvol setup` writes when onFailure is given.
 */
async function makeNodeRoot(name: string, options: RootOptions): Promise<NodeRoot> {
  const root = path.join(temp.path, name);
  const bootUnits = await addBootUnits(root, options.host);
  for (const unit of [setupUnit, verifyUnit]) {
    const source = await readFile(path.join(unitSourceDir, unit), 'utf8');
    await writeFile(path.join(root, unitDir, unit), source);
  }

  await writeExecutable(path.join(root, 'usr/bin/ctrvol'), '#!/usr/bin/env node\n');
  await wantBy(root, 'multi-user.target', setupUnit);
  await wantBy(root, 'containerd.service', setupUnit);
  await wantBy(root, 'containerd.service', verifyUnit);
  if (options.onFailure !== undefined) {
    const dropIn = path.join(root, containerdDropInPath);
    await mkdir(path.dirname(dropIn), { recursive: true });
    await writeFile(dropIn, renderContainerdDropIn(options.onFailure));
    if (options.kubelet === true) {
      const kubeletDropIn = path.join(root, kubeletDropInPath);
      await mkdir(path.dirname(kubeletDropIn), { recursive: true });
      await writeFile(kubeletDropIn, renderKubeletDropIn(options.onFailure));
    }
  }

  return { root, units: [setupUnit, verifyUnit, ...bootUnits] };
}

async function editFile(file: string, edit: (text: string) => string): Promise<void> {
  const before = await readFile(file, 'utf8');
  const after = edit(before);
  assert.notEqual(after, before, `the edit of ${file} changed nothing`);
  await writeFile(file, after);
}

function getValues(directives: readonly Directive[], section: string, key: string): string[] {
  return directives
    .filter((directive) => directive.section === section && directive.key === key)
    .flatMap((directive) => directive.value.split(/\s+/));
}

async function readUnitSources(): Promise<Directive[]> {
  const names = (await readdir(unitSourceDir)).filter((name) => /\.(service|timer)$/.test(name));
  assert.ok(names.includes(setupUnit), `${setupUnit} is missing from ${unitSourceDir}`);
  const files = await Promise.all(
    names.map(async (name) =>
      parseUnit(name, await readFile(path.join(unitSourceDir, name), 'utf8')),
    ),
  );
  return files.flat();
}

let temp: TempDir;
let setup: Directive[];

before(async () => {
  const version = await runTool('systemd-analyze', ['--version']).catch((error: Error) => {
    throw new Error('systemd-analyze is required for these tests (apt-get install systemd)', {
      cause: error,
    });
  });
  assert.equal(version.exitCode, 0, version.stderr);
  temp = await makeTempDir('ctrvol-units');
  setup = (await readUnitSources()).filter((directive) => directive.file === setupUnit);
});

after(async () => {
  await temp?.cleanup();
});

describe('ctrvol-setup.service as written', () => {
  test('it is ordered before containerd, the kubelet and nodeadm-run', () => {
    const before = getValues(setup, 'Unit', 'Before');
    for (const unit of ['containerd.service', 'kubelet.service', 'nodeadm-run.service']) {
      assert.ok(before.includes(unit), `Before= lacks ${unit}: ${before.join(' ')}`);
    }
  });

  test('it is ordered after local filesystems, udev coldplug and nodeadm-config', () => {
    const after = getValues(setup, 'Unit', 'After');
    for (const unit of [
      'local-fs.target',
      'systemd-udevd.service',
      'systemd-udev-trigger.service',
      'nodeadm-config.service',
    ]) {
      assert.ok(after.includes(unit), `After= lacks ${unit}: ${after.join(' ')}`);
    }

    assert.ok(!after.includes('systemd-udev-settle.service'), 'systemd-udev-settle is deprecated');
  });

  test('it never requires a unit, so a host without nodeadm or the kubelet can run it', () => {
    const hard = setup.filter(
      (directive) =>
        directive.section === 'Unit' &&
        ['Requires', 'Requisite', 'BindsTo', 'PartOf'].includes(directive.key),
    );
    assert.deepEqual(hard, []);
  });

  test('every ordering and dependency line in the unit files follows a comment saying why', async () => {
    const keys = ['Before', 'After', 'Wants', 'Requires', 'Requisite', 'BindsTo', 'Conflicts'];
    const bare = (await readUnitSources())
      .filter((directive) => keys.includes(directive.key) && !directive.commented)
      .map(
        (directive) => `${directive.file}:${directive.line} ${directive.key}=${directive.value}`,
      );
    assert.deepEqual(bare, []);
  });

  test('it is a oneshot that stays active, runs /usr/bin/ctrvol setup and logs as ctrvol', () => {
    const service = (key: string) => getValues(setup, 'Service', key).join(' ');
    assert.equal(service('Type'), 'oneshot');
    assert.equal(service('RemainAfterExit'), 'yes');
    assert.equal(service('ExecStart'), '/usr/bin/ctrvol setup');
    assert.equal(service('StandardOutput'), 'journal');
    assert.equal(service('SyslogIdentifier'), 'ctrvol');
    assert.deepEqual(getValues(setup, 'Install', 'WantedBy').sort(), [
      'containerd.service',
      'multi-user.target',
    ]);
  });

  test('its start timeout leaves ten minutes for the copy after the default device wait', async () => {
    const [timeout] = getValues(setup, 'Service', 'TimeoutStartSec');
    assert.ok(timeout !== undefined, 'TimeoutStartSec is not set');
    const parsed = await runTool('systemd-analyze', ['timespan', timeout]);
    const micros = /s: (\d+)$/m.exec(parsed.stdout)?.[1];
    assert.ok(micros !== undefined, `systemd-analyze cannot parse ${timeout}: ${parsed.stderr}`);
    const { waitSeconds } = parseConfig('volume:\n  device: /dev/xvdb\n').volume;
    assert.ok(Number(micros) / 1e6 >= waitSeconds + 600, `${timeout} is too short`);
  });

  test('it has no sandboxing that would hide its mount from containerd or stop mkfs', () => {
    // Each of these gives the service a mount namespace of its own, where the volume would be
    // mounted out of containerd's sight, or takes away a device or capability mkfs and mount need.
    const forbidden = [
      'PrivateMounts',
      'PrivateTmp',
      'PrivateDevices',
      'ProtectSystem',
      'ProtectHome',
      'ReadOnlyPaths',
      'ReadWritePaths',
      'InaccessiblePaths',
      'TemporaryFileSystem',
      'BindPaths',
      'BindReadOnlyPaths',
      'RootDirectory',
      'MountFlags',
      'DevicePolicy',
      'CapabilityBoundingSet',
      'DynamicUser',
      'User',
    ];
    const found = setup.filter((directive) => forbidden.includes(directive.key));
    assert.deepEqual(found, []);
  });
});

describe('ctrvol-verify.service as written', () => {
  let verify: Directive[];
  before(async () => {
    verify = (await readUnitSources()).filter((directive) => directive.file === verifyUnit);
  });

  test('it runs after containerd, before the kubelet, and again whenever containerd restarts', () => {
    assert.deepEqual(getValues(verify, 'Unit', 'After'), ['containerd.service']);
    assert.deepEqual(getValues(verify, 'Unit', 'Before'), ['kubelet.service']);
    assert.deepEqual(getValues(verify, 'Unit', 'PartOf'), ['containerd.service']);
    assert.deepEqual(getValues(verify, 'Install', 'WantedBy'), ['containerd.service']);
  });

  test('it is a oneshot that stays active and runs /usr/bin/ctrvol verify', () => {
    assert.deepEqual(getValues(verify, 'Service', 'Type'), ['oneshot']);
    assert.deepEqual(getValues(verify, 'Service', 'RemainAfterExit'), ['yes']);
    assert.equal(
      verify.find((directive) => directive.key === 'ExecStart')?.value,
      '/usr/bin/ctrvol verify',
    );
  });
});

describe('systemd-analyze verify', () => {
  test('it passes the setup unit on an EKS node before setup has written a drop-in', async () => {
    const { root, units } = await makeNodeRoot('first-boot', { host: 'eks' });
    const verdict = await verify(root, units);
    assert.ok(verdict.clean, verdict.output);
  });

  for (const onFailure of onFailureModes) {
    test(`it passes the setup unit with the containerd drop-in for onFailure: ${onFailure}`, async () => {
      const { root, units } = await makeNodeRoot(`drop-in-${onFailure}`, {
        host: 'eks',
        onFailure,
      });
      const verdict = await verify(root, units);
      assert.ok(verdict.clean, verdict.output);
    });

    test(`it passes the kubelet drop-in of volume.bindMounts for onFailure: ${onFailure}`, async () => {
      const { root, units } = await makeNodeRoot(`kubelet-drop-in-${onFailure}`, {
        host: 'eks',
        onFailure,
        kubelet: true,
      });
      const verdict = await verify(root, units);
      assert.ok(verdict.clean, verdict.output);
    });
  }

  test('it passes the setup unit on a host without nodeadm, cloud-init or the kubelet', async () => {
    const { root, units } = await makeNodeRoot('plain', { host: 'plain', onFailure: 'block' });
    const verdict = await verify(root, units);
    assert.ok(verdict.clean, verdict.output);
  });

  // Each case breaks one file of an otherwise clean root, to show that the verdict above would
  // catch that mistake: these are the ways a unit file goes wrong without anyone noticing.
  const rejected: {
    name: string;
    file: string;
    edit: (text: string) => string;
    complaint: RegExp;
  }[] = [
    {
      name: 'an unknown directive in the setup unit',
      file: path.join(unitDir, setupUnit),
      edit: (text) => text.replace('[Service]\n', '[Service]\nTimeoutStartSecs=15min\n'),
      complaint: /Unknown key .*TimeoutStartSecs/,
    },
    {
      name: 'a value systemd cannot parse in the setup unit',
      file: path.join(unitDir, setupUnit),
      edit: (text) => text.replace(/^TimeoutStartSec=.*$/m, 'TimeoutStartSec=a quarter of an hour'),
      complaint: /Failed to parse TimeoutStartSec/,
    },
    {
      name: 'an unknown directive in the containerd drop-in',
      file: containerdDropInPath,
      edit: (text) => text.replace(/^Requires=/m, 'Require='),
      complaint: /10-ctrvol\.conf.*Unknown key .*Require/,
    },
    {
      name: 'an unknown directive in the kubelet drop-in',
      file: kubeletDropInPath,
      edit: (text) => text.replace(/^After=/m, 'Afterwards='),
      complaint: /kubelet\.service\.d\/10-ctrvol\.conf.*Unknown key .*Afterwards/,
    },
    {
      name: 'an ordering cycle between setup and the boot',
      file: path.join(unitDir, 'containerd.service'),
      edit: (text) => text.replace('[Unit]\n', '[Unit]\nBefore=nodeadm-config.service\n'),
      complaint: /Found ordering cycle/,
    },
  ];

  for (const { name, file, edit, complaint } of rejected) {
    test(`it rejects ${name}`, async () => {
      const rootName = `rejects-${name.replace(/\W+/g, '-')}`;
      const { root, units } = await makeNodeRoot(rootName, {
        host: 'eks',
        onFailure: 'block',
        kubelet: true,
      });
      await editFile(path.join(root, file), edit);
      const verdict = await verify(root, units);
      assert.ok(!verdict.clean, `verify accepted ${name}`);
      assert.match(verdict.output, complaint);
    });
  }

  test('it rejects the setup unit when /usr/bin/ctrvol is missing, with a failing exit code', async () => {
    const { root, units } = await makeNodeRoot('no-binary', { host: 'eks', onFailure: 'block' });
    await rm(path.join(root, 'usr/bin/ctrvol'));
    const verdict = await verify(root, units);
    assert.notEqual(verdict.exitCode, 0);
    assert.match(verdict.output, /Command \/usr\/bin\/ctrvol is not executable/);
  });
});

describe('packaging/install.sh', () => {
  async function makeBundle(dir: string, text = "#!/usr/bin/env node\nconsole.log('ctrvol');\n") {
    const bundle = path.join(dir, 'ctrvol.cjs');
    await mkdir(dir, { recursive: true });
    await writeFile(bundle, text, { mode: 0o644 });
    return bundle;
  }

  async function install(destdir: string, bundle: string): Promise<ToolResult> {
    // DESTDIR is what keeps the script off this machine's /usr and /etc: never run it without.
    assert.ok(destdir.startsWith(os.tmpdir() + path.sep), `${destdir} is not a temporary dir`);
    return runTool('bash', [installScript, bundle], { DESTDIR: destdir });
  }

  async function getMode(file: string): Promise<number> {
    return (await stat(file)).mode & 0o7777;
  }

  test('it installs the bundle, the unit and the example config into DESTDIR and enables the unit', async () => {
    const destdir = path.join(temp.path, 'install', 'dest');
    const bundle = await makeBundle(path.join(temp.path, 'install'));
    const result = await install(destdir, bundle);
    assert.equal(result.exitCode, 0, result.stderr);

    const installed = [
      { file: 'usr/bin/ctrvol', source: bundle, mode: 0o755 },
      { file: `${unitDir}/${setupUnit}`, source: path.join(unitSourceDir, setupUnit), mode: 0o644 },
      { file: 'etc/ctrvol/config.yaml', source: exampleConfig, mode: 0o644 },
    ];
    for (const { file, source, mode } of installed) {
      const target = path.join(destdir, file);
      assert.equal(await readFile(target, 'utf8'), await readFile(source, 'utf8'), file);
      assert.equal((await getMode(target)).toString(8), mode.toString(8), file);
    }

    // A first boot whose setup fails before its wire step must still hold containerd back.
    const dropIn = path.join(destdir, 'etc/systemd/system/containerd.service.d/10-ctrvol.conf');
    assert.equal(await readFile(dropIn, 'utf8'), renderContainerdDropIn('block'));

    for (const target of ['multi-user.target', 'containerd.service']) {
      const link = path.join(destdir, 'etc/systemd/system', `${target}.wants`, setupUnit);
      assert.equal(await readlink(link), `/${unitDir}/${setupUnit}`);
    }

    const verifyLink = path.join(
      destdir,
      'etc/systemd/system/containerd.service.wants',
      verifyUnit,
    );
    assert.equal(await readlink(verifyLink), `/${unitDir}/${verifyUnit}`);
    const monitorLink = path.join(
      destdir,
      'etc/systemd/system/multi-user.target.wants',
      'ctrvol-monitor.service',
    );
    assert.equal(await readlink(monitorLink), `/${unitDir}/ctrvol-monitor.service`);

    // The installed tree, given the rest of a node's boot, loads as cleanly as the sources do.
    const units = [setupUnit, verifyUnit, ...(await addBootUnits(destdir, 'eks'))];
    const verdict = await verify(destdir, units);
    assert.ok(verdict.clean, verdict.output);
  });

  test('it keeps a config that is already there and can run again', async () => {
    const destdir = path.join(temp.path, 'reinstall', 'dest');
    const bundle = await makeBundle(path.join(temp.path, 'reinstall'));
    const config = path.join(destdir, 'etc/ctrvol/config.yaml');
    const ours = 'volume:\n  device: /dev/sdf\n';
    await mkdir(path.dirname(config), { recursive: true });
    await writeFile(config, ours, { mode: 0o600 });

    for (const run of [1, 2]) {
      const result = await install(destdir, bundle);
      assert.equal(result.exitCode, 0, `run ${run}: ${result.stderr}`);
      assert.match(result.stdout, /kept existing .*config\.yaml/);
    }

    assert.equal(await readFile(config, 'utf8'), ours);
    assert.equal((await getMode(config)).toString(8), '600');
  });

  test('it refuses a bundle without a shebang and installs nothing', async () => {
    const destdir = path.join(temp.path, 'no-shebang', 'dest');
    const bundle = await makeBundle(path.join(temp.path, 'no-shebang'), "console.log('ctrvol');\n");
    const result = await install(destdir, bundle);
    assert.equal(result.exitCode, 1);
    assert.match(result.stderr, /does not start with #!/);
    await assert.rejects(lstat(destdir), { code: 'ENOENT' });
  });
});

describe('packaging examples', () => {
  test('the example config is valid and spells out the defaults', async () => {
    const example = parseConfig(await readFile(exampleConfig, 'utf8'), exampleConfig);
    assert.deepEqual(example, parseConfig('volume:\n  device: /dev/xvdb\n'));
  });

  test('the user-data shell part is a bash script that parses', async () => {
    const text = await readFile(userData, 'utf8');
    const boundary = /boundary="([^"]+)"/.exec(text)?.[1];
    assert.ok(boundary !== undefined, 'no MIME boundary in user-data');
    const part = text
      .split(`--${boundary}`)
      .find((candidate) => /Content-Type: text\/x-shellscript/.test(candidate));
    assert.ok(part !== undefined, 'no text/x-shellscript part in user-data');
    const script = part.slice(part.indexOf('\n\n') + 2);
    assert.match(script, /^#!\/bin\/bash\n/);

    const file = path.join(temp.path, 'user-data-part.sh');
    await writeFile(file, script);
    const result = await runTool('bash', ['-n', file]);
    assert.equal(result.exitCode, 0, result.stderr);
  });
});
