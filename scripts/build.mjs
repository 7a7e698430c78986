// Bundles the agent into one self-contained file, dist/ctrvol.cjs, that runs with nothing
// beside it: an AMI bake or a user-data script copies this one file.
//
// Node compiles a whole script before running any of it, and pre-parsing 900 KB of bundled
// libraries costs more than Node's own start-up. So the bundle nests:
//   dist/ctrvol.cjs             the entry point: argv, --help, --version, errors, exit codes
//     agent/commands/index.ts   every command, its libraries (yaml, zod, pino, execa…)
//       agent/cri/index.ts      the CRI client (gRPC, protobufjs), for verify and prune only
// Each inner bundle is gzipped text inside the one around it, inflated and compiled the first
// time it is imported. `ctrvol --version` pays for neither; `ctrvol setup` for one.
import { build } from 'esbuild';
import { chmod } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

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
};

/** Builds an entry in memory and returns its code, gzipped and base64-encoded. */
async function buildEmbedded(entryPoint, plugins = []) {
  const result = await build({ ...common, entryPoints: [entryPoint], write: false, plugins });
  return gzipSync(result.outputFiles[0].contents, { level: 9 }).toString('base64');
}

/**
 * Resolves an import of `name/index.js` to a module that, when first required, inflates the
 * embedded bundle and compiles it as a module of its own.
 */
function embed(name, text) {
  return {
    name: `embed-${name}`,
    setup(context) {
      context.onResolve({ filter: new RegExp(`[\\\\/]${name}[\\\\/]index\\.js$`) }, () => ({
        path: name,
        namespace: 'embedded',
      }));
      context.onLoad({ filter: new RegExp(`^${name}$`), namespace: 'embedded' }, () => ({
        loader: 'js',
        contents: [
          "const Module = require('node:module');",
          "const { gunzipSync } = require('node:zlib');",
          `const code = gunzipSync(Buffer.from('${text}', 'base64')).toString('utf8');`,
          `const embedded = new Module(\`\${__filename}#${name}\`, module);`,
          'embedded.filename = __filename;',
          'embedded.paths = module.paths;',
          `embedded._compile(code, \`\${__filename}#${name}\`);`,
          'module.exports = embedded.exports;',
        ].join('\n'),
      }));
    },
  };
}

const cri = await buildEmbedded('agent/cri/index.ts');
const commands = await buildEmbedded('agent/commands/index.ts', [embed('cri', cri)]);

await build({
  ...common,
  entryPoints: ['agent/main.ts'],
  outfile,
  banner: { js: `#!/usr/bin/env node\n${common.banner.js}` },
  plugins: [embed('commands', commands)],
});
await chmod(outfile, 0o755);
