// esbuild plugins of scripts/build.mjs, in a module of their own so that tests can build with
// them too (build.mjs builds as soon as it is imported).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const cronIntl = fileURLToPath(new URL('../agent/monitor/cron-intl.ts', import.meta.url));

/**
 * Gives node-cron's modules agent/monitor/cron-intl.ts's `Intl` in place of the global one, so
 * that planning the monitor's runs does not load ICU's formatting data (7 MiB of the daemon's
 * resident memory; the why and the how are in that file). The import line shadows the global
 * name in those modules alone; node-cron's code itself is bundled unchanged.
 *
 * This matches the ESM build that the bundle's `import` statements resolve to. Should a later
 * node-cron stop naming Intl, the files are left as they are.
 */
export const cronLocalTime = {
  name: 'cron-local-time',
  setup(context) {
    context.onLoad(
      { filter: /[\\/]node_modules[\\/]node-cron[\\/]dist[\\/][^\\/]+\.js$/ },
      async (args) => {
        const code = await readFile(args.path, 'utf8');
        if (!/\bIntl\b/.test(code)) {
          return undefined;
        }

        return {
          contents: `import { cronIntl as Intl } from ${JSON.stringify(cronIntl)};\n${code}`,
          loader: 'js',
          resolveDir: path.dirname(args.path),
        };
      },
    );
  },
};
