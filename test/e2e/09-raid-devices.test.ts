/**
 * Scenario 9: two EBS volumes pooled as raid0 with `volume.devices`, named two different ways.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assertCtrvolArray,
  assertPauseImageLabelled,
  assertStoreOnVolume,
  assertUntouched,
  ctrvolLines,
  ctrvolWarnings,
  vmTimeout,
} from './checks.js';
import {
  describeTimeline,
  type DiskSpec,
  mappingNameRule,
  notAboutDisks,
  nvmeNameOf,
  runScenario,
  VOL0,
  VOL1,
} from './harness.js';

/** The second pooled volume, named by its volume id vol-0c7e2e000000000c3. */
const VOL2 = 'vol0c7e2e000000000c3';
const disks: DiskSpec[] = [
  // First, where "the first NVMe disk" would be: the volume nothing names.
  { serial: VOL1, file: 'vol1.raw' },
  { serial: VOL0, file: 'vol0.raw' },
  { serial: VOL2, file: 'vol2.raw' },
];

const config = `volume:
  devices: [xvdb, vol-0c7e2e000000000c3]
  raid: raid0
  filesystem: xfs
onFailure: block
`;

const scenario9 =
  'volume.devices [xvdb, vol-…] with raid0 pools the volume named by its mapping name and the ' +
  'one named by its id into one array, formats and mounts it, and leaves the third untouched';

test(scenario9, { timeout: vmTimeout(1) }, async (t) => {
  const result = await runScenario(
    {
      id: 'raid-devices',
      guestScript: 'raid-devices.sh',
      bakeConfig: config,
      maskUnits: notAboutDisks,
      udevRules: { '70-e2e-xvdb.rules': mappingNameRule(VOL0, 'xvdb') },
      runs: [{ boots: 1, nvme: disks }],
    },
    (line) => t.diagnostic(line),
  );
  const [b] = result.boots;
  assert.ok(b);

  assert.equal(b.text('xvdb.txt').trim(), `/dev/${nvmeNameOf(b, 'after-boot', VOL0)}`);
  const array = assertCtrvolArray(b, 'after-boot', 'raid0', [VOL0, VOL2]);
  const fs = assertStoreOnVolume(b, 'after-boot', array.device);
  const state = b.json<{ uuid: string; array?: { uuid: string; level: string } }>(
    'ctrvol-state.json',
  );
  assert.deepEqual(
    [state.uuid, state.array?.uuid, state.array?.level],
    [fs.uuid, array.uuid, 'raid0'],
  );
  assert.match(
    b.text('after-boot.mdadm-conf.txt').trim(),
    new RegExp(`^ARRAY /dev/md/ctrvol metadata=1\\.2 name=any:ctrvol UUID=${array.uuid}$`),
  );
  assertPauseImageLabelled(b, 'after-boot');

  // ctrvol lists the members in the kernel's name order.
  const members = [VOL0, VOL2]
    .map((serial) => nvmeNameOf(b, 'after-boot', serial) ?? serial)
    .sort()
    .join(', ');
  const lines = ctrvolLines(b);
  assert.ok(
    lines.some((l) => l.startsWith(`resolve: create raid0 /dev/md/ctrvol from ${members} (`)),
    `no create line for ${members}:\n${lines.join('\n')}`,
  );
  assert.ok(lines.some((l) => /^format: format \/dev\/md\S* \(blank\) as xfs/.test(l)));
  assert.deepEqual(ctrvolWarnings(b), []);

  assertUntouched(result, 'vol1.raw');
  t.diagnostic(describeTimeline(b));
  t.diagnostic(`qemu ran ${result.vm.seconds.toFixed(1)} s`);
});
