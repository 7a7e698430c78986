import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ImageRefError,
  normalizeImageRef,
  parseImageRef,
} from '../../agent/containerd/image-ref.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('image name normalisation', () => {
  const table: [string, string][] = [
    ['pause', 'docker.io/library/pause:latest'],
    ['pause:3.9', 'docker.io/library/pause:3.9'],
    ['library/pause', 'docker.io/library/pause:latest'],
    ['kubernetes/pause', 'docker.io/kubernetes/pause:latest'],
    ['docker.io/pause', 'docker.io/library/pause:latest'],
    ['index.docker.io/library/pause:3.9', 'docker.io/library/pause:3.9'],
    ['localhost/kubernetes/pause', 'localhost/kubernetes/pause:latest'],
    ['localhost/kubernetes/pause:latest', 'localhost/kubernetes/pause:latest'],
    ['localhost/pause', 'localhost/pause:latest'],
    ['localhost:5000/pause:3.9', 'localhost:5000/pause:3.9'],
    ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause:3.10'],
    [
      '602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/pause:3.5',
      '602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/pause:3.5',
    ],
    ['[::1]:5000/pause', '[::1]:5000/pause:latest'],
    ['Registry.Example/pause', 'Registry.Example/pause:latest'],
    [
      'my-registry:5000/team/app_v2/web.ui:1.0-rc.1',
      'my-registry:5000/team/app_v2/web.ui:1.0-rc.1',
    ],
    [`pause@${DIGEST}`, `docker.io/library/pause@${DIGEST}`],
    [`registry.k8s.io/pause:3.9@${DIGEST}`, `registry.k8s.io/pause@${DIGEST}`],
    [DIGEST, DIGEST],
  ];

  for (const [input, expected] of table) {
    test(`turns "${input}" into "${expected}"`, () => {
      assert.equal(normalizeImageRef(input), expected);
    });
  }

  const invalid: [string, RegExp][] = [
    ['', /empty/],
    ['ab'.repeat(32), /image ID/],
    ['Pause', /lowercase/],
    ['docker.io/Library/pause', /lowercase/],
    ['pause:', /not of the form/],
    ['pause:-bad', /not of the form/],
    ['pause@sha256:short', /not of the form/],
    ['registry.k8s.io//pause', /not of the form/],
    [`registry.example/${'a'.repeat(250)}`, /longer than 255/],
  ];

  for (const [input, why] of invalid) {
    test(`refuses "${input.slice(0, 40)}" as containerd would`, () => {
      assert.throws(
        () => normalizeImageRef(input),
        (error: unknown) => error instanceof ImageRefError && why.test(error.message),
      );
    });
  }

  test('splits a reference into domain, path, tag and digest', () => {
    assert.deepEqual(parseImageRef(`localhost:5000/kubernetes/pause:3.9@${DIGEST}`), {
      name: 'localhost:5000/kubernetes/pause',
      domain: 'localhost:5000',
      path: 'kubernetes/pause',
      tag: '3.9',
      digest: DIGEST,
    });
  });
});
