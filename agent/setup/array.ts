import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EnvironmentError } from '../errors.js';
import type { Disk } from '../disks/inventory.js';
import { gatherArrayFacts } from '../disks/md-facts.js';
import {
  buildDetailArgs,
  parseDetailExport,
  planArray,
  removeConfigArrays,
  renderConfigLine,
  type ArrayDetail,
  type ArrayPlan,
} from '../disks/md.js';
import type { Pool } from '../disks/selectors.js';
import { describeContent } from '../host/content.js';
import { isBlank, probeSignatures, type Signatures } from '../host/signatures.js';
import type { Logger } from '../log/logger.js';
import { act, checkContent, type SetupContext } from './context.js';

type ArrayPool = Extract<Pool, { kind: 'array' }>;

export interface ArrayOutcome {
  plan: ArrayPlan;
  /**
   * The array's device once it exists: /dev/md127 when it was found assembled, otherwise the
   * /dev/md/ctrvol link. Undefined in a dry run that would have had to build or assemble it.
   */
  device: string | undefined;
}

/**
 * Brings ctrvol's md array into being from the pooled disks: uses it as the kernel assembled it,
 * assembles it, or creates it on blank members (again, after a stop/start blanked them). What to
 * do is decided by planArray from what mdadm and /proc/mdstat report; this only gathers, acts
 * and records. Every refusal comes from the planner, before any mdadm command that writes runs.
 */
export async function ensureArray(
  context: SetupContext,
  logger: Logger,
  pool: ArrayPool,
): Promise<ArrayOutcome> {
  const { run, host, paths } = context;
  const recordedUuid = context.previous?.array?.uuid;
  const facts = await gatherArrayFacts({
    run,
    host,
    level: pool.level,
    members: pool.members,
    describeMember: (disk) => describeMember(context, disk),
    configFiles: paths.mdadmConfigFiles,
    ...(recordedUuid === undefined ? {} : { recordedUuid }),
  });
  const plan = planArray(facts);
  const members = pool.members.map((disk) => disk.name);
  for (const warning of plan.warnings) {
    logger.warn({ array: plan.device }, warning);
  }

  if (plan.action === 'use') {
    logger.info({ array: plan.device, uuid: plan.uuid }, plan.reason);
  } else {
    const what = `${plan.action} ${pool.level} ${plan.device} from ${members.join(', ')}`;
    await act(context, logger, `${what} (${plan.reason})`, async () => {
      for (const command of plan.commands) {
        await run.run('mdadm', command, { packageHint: 'mdadm' });
      }

      // mdadm returns before udev has made /dev/md/ctrvol; everything after reads that link.
      await run.run('udevadm', ['settle', '--timeout=30'], { okExitCodes: [1] });
    });
  }

  if (context.dryRun && plan.action !== 'use') {
    return { plan, device: undefined };
  }

  const detail = await readDetail(context, plan.device);
  context.array = { uuid: detail.uuid, level: pool.level, members };
  await updateMdadmConfig(context, logger, plan, detail);
  return { plan, device: plan.device };
}

async function describeMember(
  context: SetupContext,
  disk: Disk,
): Promise<{ blank: boolean; signatures?: string }> {
  const signatures = await probeSignatures(context.run, disk.path);
  if (!isBlank(signatures, disk.partitions.length)) {
    return { blank: false, signatures: describeSignatures(signatures, disk.partitions) };
  }

  const { blank, content } = await checkContent(context, disk);
  return blank
    ? { blank: true }
    : { blank: false, signatures: `no signature, but ${describeContent(content)}` };
}

function describeSignatures(signatures: Signatures, partitions: readonly string[]): string {
  if (signatures.fsType !== undefined) {
    const label = signatures.label === undefined ? '' : ` labelled "${signatures.label}"`;
    return `${signatures.fsType}${label}`;
  }

  if (partitions.length > 0) {
    return `partitions (${partitions.join(', ')})`;
  }

  return signatures.partitionTable ?? signatures.all.join(', ');
}

async function readDetail(context: SetupContext, device: string): Promise<ArrayDetail> {
  const result = await context.run.run('mdadm', buildDetailArgs(device), { packageHint: 'mdadm' });
  const detail = parseDetailExport(result.stdout);
  if (detail === undefined) {
    throw new EnvironmentError(`mdadm --detail ${device} reported no array UUID`);
  }

  return detail;
}

/**
 * Keeps mdadm's config in step with the array: stale lines for an earlier ctrvol array are
 * dropped (they would assemble nothing, or worse, a later array under a wrong name), and the
 * array in use is named once. The file that already exists is updated, so a distribution's own
 * layout is kept; with none, the one under /etc/mdadm/ when that folder exists (Debian), else
 * /etc/mdadm.conf (Amazon Linux).
 */
async function updateMdadmConfig(
  context: SetupContext,
  logger: Logger,
  plan: ArrayPlan,
  detail: ArrayDetail,
): Promise<void> {
  const files = context.paths.mdadmConfigFiles;
  const texts = await Promise.all(
    files.map((file) => readFile(file, 'utf8').catch(() => undefined)),
  );
  const existing = files.filter((_, index) => texts[index] !== undefined);
  const [amazonFile, debianFile] = files;
  const debianDirExists =
    debianFile !== undefined &&
    (await stat(path.dirname(debianFile)).then(
      (info) => info.isDirectory(),
      () => false,
    ));
  const target = existing[0] ?? (debianDirExists ? debianFile : amazonFile);
  if (target === undefined) {
    return;
  }

  const line = renderConfigLine(detail);
  const updates = new Map<string, string>();
  for (const stale of plan.staleConfig) {
    const index = files.indexOf(stale.file);
    const text = texts[index];
    if (text !== undefined) {
      updates.set(stale.file, removeConfigArrays(text, stale.arrays));
    }
  }

  const targetText = updates.get(target) ?? texts[files.indexOf(target)] ?? '';
  const named = targetText.split('\n').some((entry) => entry.trim() === line);
  if (!named) {
    const separator = targetText === '' || targetText.endsWith('\n') ? '' : '\n';
    updates.set(target, `${targetText}${separator}${line}\n`);
  }

  if (updates.size === 0) {
    return;
  }

  const names = [...updates.keys()].join(', ');
  await act(context, logger, `name ctrvol's array ${detail.uuid} in ${names}`, async () => {
    for (const [file, text] of updates) {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, text, { mode: 0o644 });
    }
  });
}
