import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assertPauseImagePinned,
  assertPodRan,
  assertStoreOnVolume,
  ctrvolWarnings,
  vmTimeout,
} from './checks.js';
import {
  describeTimeline,
  diagnoseLines,
  findmnt,
  mappingNameRule,
  runScenario,
  VOL0,
} from './harness.js';

const scenario5 =
  'ctrvol installed late from user data stops the running containerd, carries its store ' +
  'onto the volume, starts it again, and a pod starts';

test(scenario5, { timeout: vmTimeout(1) }, async (t) => {
  const result = await runScenario(
    {
      id: 'late-install',
      guestScript: 'late-install.sh',
      boots: 1,
      udevRules: { '70-e2e-xvdb.rules': mappingNameRule(VOL0, 'xvdb') },
    },
    (line) => t.diagnostic(line),
  );
  const [boot] = result.boots;
  assert.ok(boot);

  // Before: containerd runs on the root disk.
  assert.equal(findmnt(boot, 'before'), undefined, '/var/lib/containerd is not yet a mount');
  const before = boot.unitProps('before', 'containerd.service');
  assert.equal(before.ActiveState, 'active');

  // The user data part as shipped, with the download stood in for.
  assert.equal(boot.rc('user-data.log'), 0, boot.text('user-data.log'));
  diagnoseLines((l) => t.diagnostic(l), 'user data output:', boot.text('user-data.log'));
  const log = boot.text('user-data.log');
  assert.match(log, /installed \/usr\/bin\/ctrvol/);
  assert.match(log, /kept existing \/etc\/ctrvol\/config\.yaml/);

  // containerd was stopped and started again: a new main process, active.
  const pid = (text: string): string => /^MainPID=(\d+)$/m.exec(text)?.[1] ?? '';
  const after = boot.text('containerd-after.txt');
  assert.match(after, /^ActiveState=active$/m);
  assert.notEqual(pid(after), pid(boot.text('containerd-before.txt')), 'containerd restarted');

  const device = boot.text('xvdb.txt').trim();
  assert.match(device, /^\/dev\/nvme\dn1$/);
  assertStoreOnVolume(boot, 'after', device);
  const pod = assertPodRan(boot, 'after-install');
  assertPauseImagePinned(boot, 'after', pod);
  assert.equal(boot.unitProps('after', 'ctrvol-setup.service').UnitFileState, 'enabled');
  assert.deepEqual(ctrvolWarnings(boot), []);
  diagnoseLines(
    (l) => t.diagnostic(l),
    'systemctl status ctrvol-setup after the late install:',
    boot.text('ctrvol-status.txt'),
  );
  t.diagnostic(describeTimeline(boot));
  t.diagnostic(`qemu ran ${result.vm.seconds.toFixed(1)} s; pod sandbox ${pod.sandboxMs} ms`);
});
