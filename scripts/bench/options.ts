import { parseArgs } from 'node:util';

export interface BenchOptions {
  rounds: number;
  warmup: number;
  coldRuns: number;
  storeBytes: number;
  storeFiles: number;
  backing: 'disk' | 'tmpfs';
}

export const usage = `usage: npm run bench -- [options]

  --rounds N      timed rounds of every variant, at least 3 (default 5)
  --warmup N      untimed rounds first, to warm binaries and caches (default 1)
  --cold-runs N   alternating runs of each cold-start command (default 40)
  --store-mb N    extra image data in the seeded store, in MB (default 300)
  --files N       files in the extra images (default 10000)
  --backing disk|tmpfs
                  where the loop devices' sparse files, the store and its copies live: the
                  temp dir on the machine's disk (default: sync really writes, as on a node),
                  or a tmpfs of the bench's own (steadier when others use the disk, but mkfs
                  then writes its log's zeroes instead of allocating them)
`;

interface IntegerRule {
  flag: string;
  fallback: number;
  min: number;
}

function getInteger(value: string | undefined, rule: IntegerRule): number {
  if (value === undefined) {
    return rule.fallback;
  }

  const number = Number(value);
  if (!Number.isInteger(number) || number < rule.min) {
    throw new Error(`--${rule.flag}: got "${value}"; allowed: an integer ≥ ${rule.min}`);
  }

  return number;
}

export function parseBenchOptions(argv: readonly string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      'cold-runs': { type: 'string' },
      'store-mb': { type: 'string' },
      files: { type: 'string' },
      backing: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    return 'help';
  }

  const backing = values.backing ?? 'disk';
  if (backing !== 'tmpfs' && backing !== 'disk') {
    throw new Error(`--backing: got "${backing}"; allowed: disk | tmpfs`);
  }

  return {
    // Fewer than three rounds give a median that is just one noisy run.
    rounds: getInteger(values.rounds, { flag: 'rounds', fallback: 5, min: 3 }),
    warmup: getInteger(values.warmup, { flag: 'warmup', fallback: 1, min: 0 }),
    coldRuns: getInteger(values['cold-runs'], { flag: 'cold-runs', fallback: 40, min: 5 }),
    storeBytes: getInteger(values['store-mb'], { flag: 'store-mb', fallback: 300, min: 1 }) * 1e6,
    storeFiles: getInteger(values.files, { flag: 'files', fallback: 10_000, min: 1 }),
    backing,
  };
}
