/**
 * Scenario 8: `volume.instanceStore: raid10` through a reboot and an EC2 stop and start.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  assertCtrvolArray,
  assertPauseImageLabelled,
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
  type DiskSpec,
  notAboutDisks,
  runScenario,
  type ScenarioResult,
  VOL1,
} from './harness.js';

// Instance-store serials as a test rig gives them: qemu cannot set the NVMe model that marks
// instance storage on EC2, so volume.instanceStoreSerial picks these out.
const INSTANCE_STORE = ['AWS-INST-0', 'AWS-INST-1', 'AWS-INST-2', 'AWS-INST-3'];
const ebs: DiskSpec = { serial: VOL1, file: 'vol1.raw' };
/** The instance store, with the EBS volume among it so that the members are not simply 0-3. */
function attached(generation: string): DiskSpec[] {
  const store = INSTANCE_STORE.map((serial, i) => ({
    serial,
    file: `${generation}-inst${i}.raw`,
    sizeGiB: 1,
  }));
  return [...store.slice(0, 2), ebs, ...store.slice(2)];
}

const config = `volume:
  instanceStore: raid10
  instanceStoreSerial: AWS-INST-*
  filesystem: xfs
onFailure: block
`;

interface State {
  uuid: string;
  device: string;
  array?: { uuid: string; level: string; members: string[] };
}

let result: ScenarioResult;

before(
  async () => {
    result = await runScenario(
      {
        id: 'raid-instance-store',
        guestScript: 'raid-instance-store.sh',
        maskUnits: notAboutDisks,
        bakeConfig: config,
        runs: [
          { boots: 2, nvme: attached('first') },
          // A stop and start: the instance store comes back as new, blank disks.
          { boots: 1, nvme: attached('second') },
        ],
      },
      (line) => console.log(`# ${line}`),
    );
  },
  { timeout: vmTimeout(3) },
);

function boot(n: number): Boot {
  return getBoot(result, n);
}

/** The array, the store mounted from it, and the record naming both. */
function assertSetUp(b: Boot): { device: string; uuid: string; fsUuid: string; state: State } {
  const array = assertCtrvolArray(b, 'after-boot', 'raid10', INSTANCE_STORE);
  const fs = assertStoreOnVolume(b, 'after-boot', array.device);
  const state = b.json<State>('ctrvol-state.json');
  assert.equal(state.uuid, fs.uuid);
  assert.equal(state.array?.uuid, array.uuid, 'the array UUID ctrvol recorded');
  assert.equal(state.array?.level, 'raid10');
  assertPauseImageLabelled(b, 'after-boot');
  return { ...array, fsUuid: fs.uuid ?? '', state };
}

const configLine = (uuid: string): RegExp =>
  new RegExp(`^ARRAY /dev/md/ctrvol metadata=1\\.2 name=any:ctrvol UUID=${uuid}$`);

const scenario8a =
  'volume.instanceStore: raid10 builds one array of the four instance-store disks, formats it, ' +
  'mounts it with the pinned pause image carried over, and names it in mdadm.conf';

test(scenario8a, (t) => {
  const b = boot(1);
  const set = assertSetUp(b);
  assert.equal(set.device, '/dev/md127');
  assert.match(b.text('after-boot.mdadm-conf.txt').trim(), configLine(set.uuid));

  const lines = ctrvolLines(b);
  assert.ok(lines.some((l) => l.startsWith('resolve: selected the instance-store disks')));
  assert.ok(
    lines.some((l) =>
      /^resolve: create raid10 \/dev\/md\/ctrvol from nvme\S+(, nvme\S+){3} /.test(l),
    ),
    `no create line:\n${lines.join('\n')}`,
  );
  assert.ok(lines.some((l) => /^format: format \/dev\/md\S* \(blank\) as xfs/.test(l)));
  assert.ok(lines.some((l) => /^preserve: the copy matches its source/.test(l)));
  assert.deepEqual(ctrvolWarnings(b), []);
  t.diagnostic(describeTimeline(b));
});

const scenario8b =
  'after a reboot that assembles the array under another md number, ctrvol uses it as it is: ' +
  'no new array, the same filesystem, the marker file kept';

test(scenario8b, (t) => {
  const first = assertSetUp(boot(1));
  const b = boot(2);
  assert.match(boot(1).text('mdadm-conf-edited.txt'), /^ARRAY \/dev\/md5 /);
  const set = assertSetUp(b);
  assert.equal(set.device, '/dev/md5', 'the md number the edited mdadm.conf line gives');
  assert.equal(set.uuid, first.uuid, 'the same array');
  assert.equal(set.fsUuid, first.fsUuid, 'the same filesystem');
  assert.equal(b.text('marker.txt'), boot(1).text('marker.txt'), 'the marker file');

  const lines = ctrvolLines(b);
  const found = lines.find((l) => l.startsWith('resolve: found the recorded volume by UUID'));
  assert.ok(found, `ctrvol did not find the volume by UUID:\n${lines.join('\n')}`);
  assert.match(found, /device=\/dev\/md5\b/);
  assert.ok(
    !lines.some((l) => /^resolve: (create|assemble|rebuild) /.test(l)),
    `ctrvol touched the array:\n${lines.join('\n')}`,
  );
  assert.ok(!lines.some((l) => /^format: format /.test(l)), 'the array was formatted again');
  assert.deepEqual(ctrvolWarnings(b), []);
  t.diagnostic(describeTimeline(b));
});

const scenario8c =
  'after a stop and start with blank instance-store disks, ctrvol sees its old array gone, ' +
  'builds a new one, formats it and carries the store over again; the EBS volume is untouched';

test(scenario8c, (t) => {
  const first = assertSetUp(boot(1));
  const b = boot(3);
  assert.equal(b.run, 2);
  const set = assertSetUp(b);
  assert.notEqual(set.uuid, first.uuid, 'a new array');
  assert.notEqual(set.fsUuid, first.fsUuid, 'a new filesystem');
  assert.notEqual(b.rc('marker.txt'), 0, 'a marker from the old array');
  // The old line (renamed to /dev/md5 at boot 1) is gone; the new array's is the only one.
  assert.match(b.text('after-boot.mdadm-conf.txt').trim(), configLine(set.uuid));

  const lines = ctrvolLines(b);
  const rebuilt = lines.find((l) => /^resolve: rebuild raid10 \/dev\/md\/ctrvol from /.test(l));
  assert.ok(rebuilt, `no rebuild line:\n${lines.join('\n')}`);
  assert.ok(rebuilt.includes(first.uuid), `the old array is not named: ${rebuilt}`);
  assert.ok(lines.some((l) => /^format: format \/dev\/md\S* \(blank\) as xfs/.test(l)));
  assert.ok(lines.some((l) => /^preserve: the copy matches its source/.test(l)));
  // The one warning: the filesystem it recorded is nowhere to be found.
  const warnings = ctrvolWarnings(b);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0] ?? '', /the recorded volume is gone/);

  assert.equal(b.rc('ctrvol-status-cmd.json'), 0, b.text('ctrvol-status-cmd.json'));
  const status = b.json<{ mounted: boolean; state: State }>('ctrvol-status-cmd.json');
  assert.deepEqual(
    [status.mounted, status.state.uuid, status.state.array?.uuid],
    [true, set.fsUuid, set.uuid],
  );

  assertUntouched(result, ebs.file);
  t.diagnostic(describeTimeline(b));
  t.diagnostic(`qemu ran ${result.vms.map((vm) => vm.seconds.toFixed(1)).join(' + ')} s`);
});
