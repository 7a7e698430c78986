/**
 * Scenario 7: `volume.device: xvdb` across an EC2 stop and start that renumbers the NVMe disks.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  assertStoreOnVolume,
  assertUntouched,
  ctrvolLines,
  ctrvolWarnings,
  getBoot,
  vmTimeout,
} from './checks.js';
import {
  type Boot,
  describeTimeline,
  mappingNameRule,
  notAboutDisks,
  nvmeControllers,
  nvmeNameOf,
  runScenario,
  type ScenarioResult,
  VOL0,
  VOL1,
} from './harness.js';

const data = { serial: VOL0, file: 'vol0.raw' };
const other = { serial: VOL1, file: 'vol1.raw' };

let result: ScenarioResult;

before(
  async () => {
    result = await runScenario(
      {
        id: 'mapping-name',
        guestScript: 'mapping-name.sh',
        maskUnits: notAboutDisks,
        bakeConfig: 'volume:\n  device: xvdb\n  filesystem: xfs\nonFailure: block\n',
        udevRules: { '70-e2e-xvdb.rules': mappingNameRule(VOL0, 'xvdb') },
        runs: [
          { boots: 1, nvme: [data, other] },
          // The same two disks, the other way round.
          { boots: 1, nvme: [other, data] },
        ],
      },
      (line) => console.log(`# ${line}`),
    );
  },
  { timeout: vmTimeout(2) },
);

function boot(n: number): Boot {
  return getBoot(result, n);
}

/** The data volume's kernel name at this boot, and /dev/xvdb leading to it. */
function dataDevice(b: Boot): string {
  const name = nvmeNameOf(b, 'after-boot', VOL0);
  assert.ok(name, `boot ${b.number}: no NVMe disk with serial ${VOL0}`);
  assert.equal(b.text('xvdb.txt').trim(), `/dev/${name}`, `boot ${b.number}: /dev/xvdb`);
  return `/dev/${name}`;
}

/** The disk nothing names carries no signature at all, in the guest's eyes. */
function assertOtherBlank(b: Boot): void {
  assert.equal(b.rc('blkid-vol1.txt'), 2, `${VOL1} carries: ${b.text('blkid-vol1.txt')}`);
}

const scenario7a =
  'volume.device: xvdb resolves through the udev mapping-name link, and the blank volume is ' +
  'formatted and mounted';

test(scenario7a, () => {
  const b = boot(1);
  const device = dataDevice(b);
  const fs = assertStoreOnVolume(b, 'after-boot', device);
  const state = b.json<{ uuid: string; device: string }>('ctrvol-state.json');
  assert.deepEqual([state.uuid, state.device], [fs.uuid, device]);

  const lines = ctrvolLines(b);
  const resolved = lines.find((l) => l.startsWith('resolve: resolved xvdb'));
  assert.ok(resolved, `ctrvol did not resolve xvdb:\n${lines.join('\n')}`);
  assert.match(resolved, new RegExp(`device=${device}\\b`));
  assert.match(resolved, /via="?udev link/);
  assert.ok(lines.some((l) => l.startsWith(`format: format ${device} (blank) as xfs`)));
  assert.deepEqual(ctrvolWarnings(b), []);
  assertOtherBlank(b);
});

const scenario7b =
  'after a stop and start with the NVMe disks attached in the other order, the same volume is ' +
  'found by its UUID and mounted again, and the other disk is untouched';

test(scenario7b, (t) => {
  const first = boot(1);
  const b = boot(2);
  assert.equal(b.run, 2);
  const slots = (x: Boot): string[] => nvmeControllers(x, 'after-boot').map((c) => c.serial);
  assert.deepEqual(slots(first), [VOL0, VOL1], 'run 1: the PCI order');
  assert.deepEqual(slots(b), [VOL1, VOL0], 'run 2: the other PCI order');

  const device = dataDevice(b);
  t.diagnostic(`the data volume was ${dataDevice(first)} in run 1 and is ${device} in run 2`);
  const fs = assertStoreOnVolume(b, 'after-boot', device);
  assert.equal(fs.uuid, assertStoreOnVolume(first, 'after-boot', dataDevice(first)).uuid);
  assert.equal(b.text('marker.txt'), first.text('marker.txt'), 'the marker file');

  const lines = ctrvolLines(b);
  const found = lines.find((l) => l.startsWith('resolve: found the recorded volume by UUID'));
  assert.ok(found, `ctrvol did not find the volume by UUID:\n${lines.join('\n')}`);
  assert.match(found, new RegExp(`device=${device}\\b`));
  assert.ok(!lines.some((l) => /^format: format /.test(l)), 'the volume was formatted again');
  assert.deepEqual(ctrvolWarnings(b), []);

  // The record follows the volume to its name of this boot; `ctrvol status` reads it so.
  const state = b.json<{ uuid: string; device: string }>('ctrvol-state.json');
  assert.deepEqual([state.uuid, state.device], [fs.uuid, device]);
  assert.equal(b.rc('ctrvol-status-cmd.json'), 0, b.text('ctrvol-status-cmd.json'));
  const status = b.json<{ mounted: boolean; state: { uuid: string } }>('ctrvol-status-cmd.json');
  assert.deepEqual([status.mounted, status.state.uuid], [true, fs.uuid]);

  assertOtherBlank(b);
  assertUntouched(result, other.file);
  t.diagnostic(describeTimeline(b));
  t.diagnostic(`qemu ran ${result.vms.map((vm) => vm.seconds.toFixed(1)).join(' + ')} s`);
});

const scenario7c = 'the kernel named the data volume differently in the two runs';

test(scenario7c, (t) => {
  const before = dataDevice(boot(1));
  const after = dataDevice(boot(2));
  // The PCI order is the harness's to choose, the kernel's numbering is not: NVMe probes run
  // asynchronously and usually, not always, finish in PCI order (one boot in eight here did not).
  // When they did not, 7b still holds, but it did not see a renamed volume.
  if (after === before) {
    t.skip(`the kernel named the data volume ${after} both times; no renaming this time`);
    return;
  }
  assert.notEqual(after, before);
});
