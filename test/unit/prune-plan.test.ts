import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planPrune, type NodeImage, type PruneFacts } from '../../agent/images/plan.js';
import { emptyUsage, recordSighting } from '../../agent/images/usage.js';
import { globToRegExp } from '../../agent/text.js';

const minute = 60_000;
const now = 1_800_000_000_000;

function image(name: string, sizeBytes: number, extra: Partial<NodeImage> = {}): NodeImage {
  return {
    id: `sha256:${name.replace(/\W/g, '')}`,
    repoTags: [name],
    repoDigests: [`${name.split(':')[0]}@sha256:d${name.replace(/\W/g, '')}`],
    sizeBytes,
    pinned: false,
    ...extra,
  };
}

const pause = image('localhost/kubernetes/pause:latest', 1);
const app = image('registry.example/app:1', 300);
const old = image('registry.example/old:1', 100);
const big = image('registry.example/big:1', 900);
const labelled = image('registry.example/agent:2', 50);
const fresh = image('registry.example/fresh:1', 70);
const tools = image('registry.example/tools/debug:3', 10);

function facts(overrides: Partial<PruneFacts> = {}): PruneFacts {
  const images = [pause, app, old, big, labelled, fresh, tools];
  const usage = emptyUsage();
  for (const item of images) {
    usage.images[item.id] = { firstSeen: now - 60 * minute };
  }

  usage.images[fresh.id] = { firstSeen: now - 1 * minute };
  usage.images[old.id] = { firstSeen: now - 60 * minute, lastUsed: now - 50 * minute };
  usage.images[big.id] = { firstSeen: now - 60 * minute, lastUsed: now - 10 * minute };
  return {
    images,
    containers: [{ id: 'c1', image: app.id, imageRef: app.repoDigests[0] as string }],
    pinnedNames: new Set([labelled.repoTags[0] as string]),
    sandboxImage: 'localhost/kubernetes/pause:latest',
    usage,
    keep: ['registry.example/tools/*'],
    minAgeSeconds: 300,
    now,
    ...overrides,
  };
}

describe('the prune plan', () => {
  test('protects the sandbox, pinned, in-use, young and kept images, saying why', () => {
    const plan = planPrune(facts());
    const reasons = Object.fromEntries(
      plan.protected.map((entry) => [entry.image.repoTags[0], entry.reasons]),
    );

    assert.deepEqual(reasons, {
      'localhost/kubernetes/pause:latest': ['the sandbox image'],
      'registry.example/app:1': ['in use by a container'],
      'registry.example/agent:2': ['pinned'],
      'registry.example/fresh:1': ['younger than 300 s'],
      'registry.example/tools/debug:3': ['matches keep pattern "registry.example/tools/*"'],
    });
  });

  test('orders the rest least recently used first, never-used ones by when first seen', () => {
    const plan = planPrune(facts());

    // old: last used 50 min ago; big: 10 min ago; neither was used before that.
    assert.deepEqual(
      plan.candidates.map((candidate) => candidate.image.repoTags[0]),
      ['registry.example/old:1', 'registry.example/big:1'],
    );
  });

  test('breaks ties in last use by removing the larger image first', () => {
    const usage = emptyUsage();
    const small = image('a/small:1', 10);
    const large = image('a/large:1', 1000);
    usage.images[small.id] = { firstSeen: now - 60 * minute };
    usage.images[large.id] = { firstSeen: now - 60 * minute };

    const plan = planPrune(facts({ images: [small, large], usage, containers: [] }));

    assert.deepEqual(
      plan.candidates.map((c) => c.image.repoTags[0]),
      ['a/large:1', 'a/small:1'],
    );
  });

  test("finds a container's image by name, id or repo digest, whatever state it is in", () => {
    for (const ref of [app.id, app.repoTags[0], app.repoDigests[0]] as string[]) {
      const plan = planPrune(facts({ containers: [{ id: 'x', image: ref, imageRef: '' }] }));
      assert.ok(
        plan.protected.some(
          (entry) => entry.image === app && entry.reasons.includes('in use by a container'),
        ),
        ref,
      );
    }
  });

  test("takes CRI's own pinned flag as well as the label", () => {
    const flagged = image('b/flagged:1', 5, { pinned: true });
    const usage = emptyUsage();
    usage.images[flagged.id] = { firstSeen: 0 };

    const plan = planPrune(facts({ images: [flagged], usage, containers: [] }));

    assert.deepEqual(plan.protected[0]?.reasons, ['pinned']);
  });

  test('treats an image ctrvol has never seen as young', () => {
    const unseen = image('c/new:1', 5);

    const plan = planPrune(facts({ images: [unseen], usage: emptyUsage(), containers: [] }));

    assert.deepEqual(plan.protected[0]?.reasons, ['younger than 300 s']);
  });
});

describe('image usage records', () => {
  test('keep first sight, stamp last use for images in use, and drop images that are gone', () => {
    const first = recordSighting(
      emptyUsage(),
      ['sha256:a', 'sha256:b'],
      new Set(['sha256:a']),
      1000,
    );
    const second = recordSighting(first, ['sha256:a', 'sha256:c'], new Set(), 2000);

    assert.deepEqual(first.images, {
      'sha256:a': { firstSeen: 1000, lastUsed: 1000 },
      'sha256:b': { firstSeen: 1000 },
    });
    assert.deepEqual(second.images, {
      'sha256:a': { firstSeen: 1000, lastUsed: 1000 },
      'sha256:c': { firstSeen: 2000 },
    });
  });
});

describe('keep patterns', () => {
  const cases: [string, string, boolean][] = [
    ['registry.example/tools/*', 'registry.example/tools/debug:3', true],
    ['registry.example/tools/*', 'registry.example/toolsx:1', false],
    ['*:latest', 'a/b:latest', true],
    ['a/b:1.?', 'a/b:1.2', true],
    ['a/b:1.?', 'a/b:1.23', false],
    ['a.b/c', 'aXb/c', false],
  ];

  for (const [pattern, name, matches] of cases) {
    test(`"${pattern}" ${matches ? 'matches' : 'does not match'} "${name}"`, () => {
      assert.equal(globToRegExp(pattern).test(name), matches);
    });
  }
});
