import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertPauseImagePinned, assertPodRan, vmTimeout } from './checks.js';
import {
  bakedConfig,
  describeTimeline,
  diagnoseLines,
  parseImages,
  runScenario,
  SANDBOX_IMAGE,
} from './harness.js';

const scenario4 =
  'with the cached pause image deleted by hand and containerd restarted, ctrvol verify ' +
  're-imports /etc/eks/pause.tar, pins it, and a pod starts';

test(scenario4, { timeout: vmTimeout(1) }, async (t) => {
  const result = await runScenario(
    { id: 'pause-archive', guestScript: 'pause-archive.sh', boots: 1, bakeConfig: bakedConfig },
    (line) => t.diagnostic(line),
  );
  const [boot] = result.boots;
  assert.ok(boot);

  // Before: the AMI's pinned pause image is there and verify found nothing to do.
  assert.ok(parseImages(boot.text('before.images.txt')).some((i) => i.ref === SANDBOX_IMAGE));
  assert.match(boot.text('verify-before.txt'), /^Result=success$/m);

  // Deleted by hand, then containerd restarted without it.
  assert.equal(boot.rc('rm-pause.txt'), 0, boot.text('rm-pause.txt'));
  const removed = parseImages(boot.text('removed.images.txt'));
  assert.ok(!removed.some((i) => i.ref === SANDBOX_IMAGE), 'the pause image was not deleted');
  assert.equal(boot.rc('restart.txt'), 0, boot.text('restart.txt'));

  // ctrvol-verify ran again with containerd (PartOf=), and succeeded.
  const [first, second] = boot.text('verify-invocations.txt').trim().split(' ');
  assert.ok(first && second && first !== second, 'ctrvol-verify did not run again');
  const after = boot.text('verify-after.txt');
  assert.match(after, /^ActiveState=active$/m, after);
  assert.match(after, /^Result=success$/m, after);

  // Its journal, for that run: missing, imported from the archive, pinned.
  const lines = boot
    .journal()
    .filter(
      (e) =>
        e._SYSTEMD_UNIT === 'ctrvol-verify.service' &&
        e._SYSTEMD_INVOCATION_ID === second &&
        e.SYSLOG_IDENTIFIER === 'ctrvol',
    )
    .map((e) => String(e.MESSAGE ?? ''));
  diagnoseLines((l) => t.diagnostic(l), 'ctrvol-verify after the restart:', lines.join('\n'));
  assert.ok(
    lines.some((l) => /the sandbox image is missing; importing it from the archive/.test(l)),
    lines.join('\n'),
  );
  assert.ok(
    lines.some((l) => /imported and pinned the sandbox image/.test(l)),
    lines.join('\n'),
  );
  assert.match(boot.text('verify-status.txt'), /Active: active \(exited\)/);

  // containerd's view: back, with the label; the CRI's: pinned; and a pod starts on it.
  const pod = assertPodRan(boot, 'after-restore');
  assertPauseImagePinned(boot, 'after', pod);

  // A second run changes nothing.
  assert.equal(boot.rc('verify-again.txt'), 0, boot.text('verify-again.txt'));
  assert.match(boot.text('verify-again.txt'), /is present and pinned/);

  t.diagnostic(describeTimeline(boot));
  t.diagnostic(`qemu ran ${result.vm.seconds.toFixed(1)} s; pod sandbox ${pod.sandboxMs} ms`);
});
