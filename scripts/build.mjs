// Bundles the agent into one self-contained file, dist/ctrvol.cjs, that runs with nothing
// beside it: an AMI bake or a user-data script copies this one file.
//
// Node compiles a whole script before running any of it, and pre-parsing 900 KB of bundled
// libraries costs more than Node's own start-up. So the bundle nests:
//   dist/ctrvol.cjs             the entry point: argv, --help, --version, errors, exit codes
//     agent/commands/index.ts   every command, its libraries (yaml, zod, pino, execa…)
//       agent/cri/index.ts      the CRI client (gRPC, protobufjs), for verify, prune, monitor
// Each inner bundle is gzipped text on a comment line at the end of the file, inflated and
// compiled the first time it is imported. `ctrvol --version` pays for neither; `ctrvol setup`
// for one.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { appendFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { cronLocalTime } from './build-plugins.mjs';

const outfile = 'dist/ctrvol.cjs';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: process.env.CTRVOL_BUILD_DEBUG === undefined,
  // Names stay readable in stack traces an operator may paste into an issue.
  keepNames: true,
  legalComments: 'none',
  logLevel: 'warning',
  // ESM libraries (node-cron) read import.meta.url at load, which a CJS bundle does not have;
  // give them the bundle's own file URL instead.
  define: { 'import.meta.url': '__ctrvolFileUrl' },
  banner: { js: "var __ctrvolFileUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [cronLocalTime],
};

/**
 * Builds an entry in memory and returns the line at the end of dist/ctrvol.cjs that carries it:
 * its name, a hash of its code (the code cache's key), and the code gzipped and base64-encoded.
 */
async function buildEmbedded(name, entryPoint, plugins = []) {
  const result = await build({
    ...common,
    entryPoints: [entryPoint],
    write: false,
    plugins: [...common.plugins, ...plugins],
  });
  const code = result.outputFiles[0].contents;
  const hash = createHash('sha256').update(code).digest('hex').slice(0, 16);
  const text = gzipSync(code, { level: 9 }).toString('base64');
  return `//ctrvol-embedded ${name} ${hash} ${text}
`;
}

/**
 * Resolves an import of `name/index.js` to a module that, when first required, loads the embedded
 * bundle through agent/embedded.ts: it inflates it and compiles it as a module of its own, with
 * V8's code cache when the command turned that on.
 *
 * The bundle's text is a comment line at the end of the file, read back from the file, rather
 * than a string literal in the code: V8 keeps a literal's own copy of the text, beside the
 * source of the script it is in, for as long as that script lives, which in the monitor is as
 * long as the process. An inner bundle's `__filename` is the file's with `#name` appended.
 */
function embed(name) {
  return {
    name: `embed-${name}`,
    setup(context) {
      context.onResolve({ filter: new RegExp(`[\\\\/]${name}[\\\\/]index\\.js$`) }, () => ({
        path: name,
        namespace: 'embedded',
      }));
      context.onLoad({ filter: new RegExp(`^${name}$`), namespace: 'embedded' }, () => ({
        loader: 'js',
        resolveDir: path.resolve('agent'),
        contents: [
          "const { loadEmbedded } = require('./embedded.ts');",
          "const file = __filename.replace(/#[^/]*$/, '');",
          `module.exports = loadEmbedded(${JSON.stringify(name)}, file, module);`,
        ].join('\n'),
      }));
    },
  };
}

const cri = await buildEmbedded('cri', 'agent/cri/index.ts');
const commands = await buildEmbedded('commands', 'agent/commands/index.ts', [embed('cri')]);

await build({
  ...common,
  entryPoints: ['agent/main.ts'],
  outfile,
  banner: { js: `#!/usr/bin/env node\n${common.banner.js}` },
  plugins: [...common.plugins, embed('commands')],
});
await appendFile(outfile, commands + cri);
await chmod(outfile, 0o755);
