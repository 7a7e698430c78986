import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeTimeline, findmnt, parseImages, runScenario, SANDBOX_IMAGE } from './harness.js';
import { podReport, vmTimeout } from './checks.js';

const scenario1 =
  'the community recipe hides the pinned pause image, and the next pod sandbox fails to ' +
  'pull it (#2122)';

test(scenario1, { timeout: vmTimeout(1) }, async (t) => {
  const result = await runScenario(
    { id: 'community-recipe', guestScript: 'community-recipe.sh', boots: 1 },
    (line) => t.diagnostic(line),
  );
  const [boot] = result.boots;
  assert.ok(boot);

  // Before the recipe: the AMI's cache works, so what follows is the recipe's doing.
  const before = podReport(boot, 'before-recipe');
  assert.equal(before.ok, true, `a pod must start on the AMI's store: ${JSON.stringify(before)}`);
  assert.ok(
    before.images?.some((i) => i.repoTags.includes(SANDBOX_IMAGE) && i.pinned),
    'the AMI caches the sandbox image, pinned',
  );

  assert.equal(boot.rc('recipe.log'), 0, boot.text('recipe.log'));
  const mounted = findmnt(boot, 'after');
  assert.equal(mounted?.source, boot.text('recipe-device.txt').trim());
  assert.ok(
    !parseImages(boot.text('after.images.txt')).some((i) => i.ref === SANDBOX_IMAGE),
    `the recipe's fresh volume hides the cached image:\n${boot.text('after.images.txt')}`,
  );

  const after = podReport(boot, 'after-recipe');
  assert.equal(after.ok, false, 'no pod sandbox can start after the recipe');
  assert.equal(after.error?.step, 'RunPodSandbox');
  const message = after.error?.message ?? '';
  assert.match(message, /failed to pull image "localhost\/kubernetes\/pause:latest"/);
  assert.match(message, /dial tcp 127\.0\.0\.1:443: connect: connection refused/);
  t.diagnostic(`the sandbox error, as the kubelet would log it: ${message}`);
  t.diagnostic(describeTimeline(boot));
  t.diagnostic(`qemu ran ${result.vm.seconds.toFixed(1)} s`);
});
