// Bundles the agent into one self-contained file, dist/ctrvol.cjs, that runs with nothing
// beside it: an AMI bake or a user-data script copies this one file.
import { build } from 'esbuild';
import { chmod } from 'node:fs/promises';

const outfile = 'dist/ctrvol.cjs';

await build({
  entryPoints: ['agent/main.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  // Names stay readable in stack traces an operator may paste into an issue.
  keepNames: true,
  legalComments: 'none',
  banner: { js: '#!/usr/bin/env node' },
  logLevel: 'warning',
});
await chmod(outfile, 0o755);
