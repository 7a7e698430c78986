/**
 * Scenarios 2 and 3 share one VM run: ctrvol baked into the image, a blank data volume at the
 * first boot, then a reboot.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  assertPauseImagePinned,
  assertPodRan,
  assertStoreOnVolume,
  ctrvolLines,
  ctrvolWarnings,
  getBoot,
  vmTimeout,
} from './checks.js';
import {
  bakedConfig,
  type Boot,
  criticalPath,
  type CriticalPath,
  describeCriticalPath,
  describeTimeline,
  diagnoseLines,
  runScenario,
  type ScenarioResult,
} from './harness.js';

let result: ScenarioResult;
const boots = 2;

before(
  async () => {
    result = await runScenario(
      { id: 'ctrvol-at-boot', guestScript: 'ctrvol-at-boot.sh', boots, bakeConfig: bakedConfig },
      (line) => console.log(`# ${line}`),
    );
  },
  { timeout: vmTimeout(boots) },
);

function boot(n: number): Boot {
  return getBoot(result, n);
}

/** setup finished before containerd's start job began, and containerd came up after it. */
function assertSetupBeforeContainerd(b: Boot): CriticalPath {
  const path = criticalPath(b);
  assert.ok(
    path.setupDone <= path.containerdStart,
    `boot ${b.number}: containerd started at ${path.containerdStart} s, before ctrvol-setup ` +
      `finished at ${path.setupDone} s`,
  );
  assert.equal(b.unitJob('ctrvol-setup.service').result, 'done');
  assert.equal(b.unitJob('containerd.service').result, 'done');
  const setup = b.unitProps('after-boot', 'ctrvol-setup.service');
  assert.equal(setup.ActiveState, 'active');
  assert.equal(setup.Result, 'success');
  // The same order from systemd's own timestamps, independent of the journal.
  const containerd = b.unitProps('after-boot', 'containerd.service');
  assert.ok(
    Number(setup.ExecMainExitTimestampMonotonic) <=
      Number(containerd.ExecMainStartTimestampMonotonic),
  );
  return path;
}

const scenario2 =
  'ctrvol-setup puts the store on the NVMe volume by UUID before containerd starts, ' +
  'the pause image stays pinned, and a pod starts';

test(scenario2, async (t) => {
  const b = boot(1);
  const path = assertSetupBeforeContainerd(b);
  t.diagnostic(describeCriticalPath(b, path));
  t.diagnostic(describeTimeline(b));
  t.diagnostic(`qemu ran ${result.vm.seconds.toFixed(1)} s for both boots`);

  const device = b.text('vol0-device.txt').trim();
  const fs = assertStoreOnVolume(b, 'after-boot', device);
  const state = b.json<{ uuid: string; device: string }>('ctrvol-state.json');
  assert.equal(state.uuid, fs.uuid, 'ctrvol recorded the UUID that is mounted');
  assert.match(b.text('blkid-vol0.txt'), new RegExp(`^UUID=${fs.uuid}$`, 'm'));
  assert.equal(b.text('findmnt-by-uuid.txt').trim(), '/var/lib/containerd');
  // `ctrvol status` tells the same story.
  assert.equal(b.rc('ctrvol-status-cmd.json'), 0, b.text('ctrvol-status-cmd.json'));
  const status = b.json<{ setUp: boolean; mounted: boolean; state: { uuid: string } }>(
    'ctrvol-status-cmd.json',
  );
  assert.equal(status.setUp, true);
  assert.equal(status.mounted, true);
  assert.equal(status.state.uuid, fs.uuid);

  const pod = assertPodRan(b, 'boot1');
  assertPauseImagePinned(b, 'after-boot', pod);

  // The first boot formatted the blank volume and carried the AMI's store over.
  const lines = ctrvolLines(b);
  assert.ok(lines.some((l) => /^format: format \/dev\/nvme\dn1 \(blank\) as xfs/.test(l)));
  assert.ok(lines.some((l) => /^preserve: the copy matches its source/.test(l)));
  assert.deepEqual(ctrvolWarnings(b), []);

  // `systemctl status ctrvol-setup` reads well: active, exit 0, and the steps in its log.
  const unitStatus = b.text('ctrvol-status.txt');
  diagnoseLines((l) => t.diagnostic(l), 'systemctl status ctrvol-setup:', unitStatus);
  assert.equal(b.rc('ctrvol-status.txt'), 0);
  assert.match(unitStatus, /Active: active \(exited\)/);
  assert.match(unitStatus, /status=0\/SUCCESS/);
  assert.match(unitStatus, /ctrvol\[\d+\]: setup finished in/);
  assert.match(b.text('containerd-dropin.txt'), /^Requires=ctrvol-setup\.service$/m);

  t.diagnostic(`pod sandbox started in ${pod.sandboxMs} ms`);
});

const scenario3 =
  'after a reboot the same volume is found by its UUID and mounted again without a ' +
  'reformat, the marker file is still there, and a pod starts again';

test(scenario3, async (t) => {
  const first = boot(1);
  const b = boot(2);
  const path = assertSetupBeforeContainerd(b);
  t.diagnostic(describeCriticalPath(b, path));
  t.diagnostic(describeTimeline(b));

  const device = b.text('vol0-device.txt').trim();
  const fs = assertStoreOnVolume(b, 'after-boot', device);
  assert.equal(b.text('findmnt-by-uuid.txt').trim(), '/var/lib/containerd');
  const before = assertStoreOnVolume(first, 'after-boot', first.text('vol0-device.txt').trim());
  assert.equal(fs.uuid, before.uuid, 'the same filesystem as before the reboot');

  const lines = ctrvolLines(b);
  assert.ok(
    lines.some((l) => l.startsWith('resolve: found the recorded volume by UUID')),
    `ctrvol did not find the volume by UUID:\n${lines.join('\n')}`,
  );
  assert.ok(lines.some((l) => l.startsWith('format: already done')));
  assert.ok(!lines.some((l) => /^format: format /.test(l)), 'the volume was formatted again');
  assert.ok(lines.some((l) => l.startsWith('preserve: already done')));
  assert.deepEqual(ctrvolWarnings(b), []);

  assert.equal(b.rc('marker.txt'), 0, 'the marker file is gone');
  assert.equal(b.text('marker.txt'), first.text('marker.txt'));

  const pod = assertPodRan(b, 'boot2');
  assertPauseImagePinned(b, 'after-boot', pod);
  t.diagnostic(`pod sandbox started in ${pod.sandboxMs} ms`);
});
