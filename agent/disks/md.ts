import path from 'node:path';
import { EnvironmentError } from '../errors.js';
import { parseExport } from '../host/signatures.js';
import { compareDeviceNames } from './names.js';
import type { RaidLevel } from './selectors.js';

/**
 * The md array decisions, as pure functions over what mdadm and /proc/mdstat print. The caller
 * runs the commands (md-facts.ts gathers the text); everything that decides lives here, so each
 * decision is tested against recorded output on a machine without the md driver.
 */

/** The array's name, in its superblock and under /dev/md/. */
export const arrayName = 'ctrvol';
export const arrayDevice = `/dev/md/${arrayName}`;

/**
 * Superblock format 1.2 (at 4 KiB from the start of each member): mdadm's default, and what both
 * amazon-eks-ami and Bottlerocket get by not naming one. Named here so that an mdadm with another
 * default cannot change it.
 */
export const metadataVersion = '1.2';

/**
 * Bottlerocket's 256 KiB chunk rather than mdadm's 512 KiB default (which amazon-eks-ami keeps).
 * mkfs.xfs sets the log stripe unit from the array's chunk and allows at most 256 KiB, so with
 * 512 KiB it warns and falls back to 32 KiB (amazon-eks-ami passes `-l su=8b` for that reason);
 * with 256 KiB the data and log stripe units match and mkfs needs no extra option.
 */
export const chunkKiB = 256;

/** The mdadm arguments (after "mdadm") for one step of a plan. */
export type MdadmArgs = readonly string[];

export interface CreateOptions {
  level: RaidLevel;
  /** Member device paths, in the order they take their roles. */
  members: readonly string[];
  name?: string;
  chunkKiB?: number;
}

/**
 * mdadm --create for ctrvol's array.
 *
 * - `--run`: mdadm otherwise stops to ask when a member looks used (random data on an encrypted
 *   EBS volume can look like a partition table), and ctrvol has no terminal; the caller has
 *   already established that each member is blank.
 * - `--homehost=any`: the name is stored as any:ctrvol, which every host assembles as
 *   /dev/md/ctrvol. With the hostname stored instead, an early boot under another hostname
 *   assembles it as /dev/md/ctrvol_0 (amazon-eks-ami searches for that suffix; Bottlerocket passes
 *   --homehost=any as here).
 * - raid10 `--assume-clean`: fresh instance-store disks read as zeros on every member, so the
 *   mirrors already agree and the initial resync would only rewrite terabytes of zeros.
 * - raid10 `--bitmap=internal`: mdadm 4.3 asks about a write-intent bitmap unless told, and older
 *   versions add one only above 100 GB; naming it gives the same array everywhere, and after a
 *   crash only the dirty regions are resynced rather than the whole array. raid0 has no
 *   redundancy and takes no bitmap.
 * - raid10 `--layout=n2`: two near copies, mdadm's default, named for the same reason.
 */
export function buildCreateArgs(options: CreateOptions): MdadmArgs {
  const name = options.name ?? arrayName;
  const level = options.level === 'raid0' ? '0' : '10';
  const redundancy =
    options.level === 'raid10' ? ['--layout=n2', '--bitmap=internal', '--assume-clean'] : [];

  return [
    '--create',
    `/dev/md/${name}`,
    '--run',
    `--metadata=${metadataVersion}`,
    `--level=${level}`,
    `--chunk=${options.chunkKiB ?? chunkKiB}`,
    ...redundancy,
    `--name=${name}`,
    '--homehost=any',
    `--raid-devices=${options.members.length}`,
    ...options.members,
  ];
}

/**
 * mdadm --assemble by UUID from the named members. No --run: an array that is missing a member
 * should not start degraded behind the operator's back.
 */
export function buildAssembleArgs(
  uuid: string,
  members: readonly string[],
  name = arrayName,
): MdadmArgs {
  return ['--assemble', `/dev/md/${name}`, `--uuid=${uuid}`, ...members];
}

export function buildStopArgs(device: string): MdadmArgs {
  return ['--stop', device];
}

/** Prints a member's superblock as KEY=value lines; exit 1 when there is none. */
export function buildExamineArgs(member: string): MdadmArgs {
  return ['--examine', '--export', member];
}

export function buildDetailArgs(device: string): MdadmArgs {
  return ['--detail', '--export', device];
}

/** The line mdadm --detail --brief prints for an array, for an mdadm.conf. */
export function renderConfigLine(detail: ArrayDetail): string {
  const name = detail.name === undefined ? '' : ` name=${detail.name}`;
  const metadata = detail.metadata ?? metadataVersion;
  return `ARRAY ${arrayDevice} metadata=${metadata}${name} UUID=${detail.uuid}`;
}

/** One array as /proc/mdstat shows it. */
export interface MdstatArray {
  /** Kernel name: md127. */
  name: string;
  active: boolean;
  readOnly: boolean;
  /** raid0, raid10…; undefined for an inactive array: the kernel does not know it yet. */
  level: string | undefined;
  members: MdstatMember[];
  blocks: number | undefined;
  metadata: string | undefined;
  chunkKiB: number | undefined;
  /** [4/3]: devices the array has, and devices working. Absent for raid0. */
  raidDisks: number | undefined;
  workingDisks: number | undefined;
  /** A resync, recovery, reshape or check under way, with its progress. */
  sync: { action: string; percent: number } | undefined;
}

export interface MdstatMember {
  name: string;
  /** The slot number in brackets (a descriptor number, not always the role). */
  slot: number;
  faulty: boolean;
  spare: boolean;
}

export interface Mdstat {
  personalities: string[];
  arrays: MdstatArray[];
}

export function parseMdstat(text: string): Mdstat {
  const personalities: string[] = [];
  const arrays: MdstatArray[] = [];
  let current: MdstatArray | undefined;

  for (const line of text.split('\n')) {
    if (line.startsWith('Personalities :')) {
      personalities.push(...[...line.matchAll(/\[(\w+)\]/g)].map((match) => match[1] as string));
      continue;
    }

    const head = /^(md\S+) : (active|inactive)((?: \([\w-]+\))*)(.*)$/.exec(line);
    if (head !== null) {
      const words = (head[4] ?? '').trim().split(/\s+/).filter(Boolean);
      const level = words[0] !== undefined && !words[0].includes('[') ? words.shift() : undefined;
      current = {
        name: head[1] as string,
        active: head[2] === 'active',
        readOnly: /read-only/.test(head[3] ?? ''),
        level,
        members: words.map(parseMdstatMember).filter((member) => member !== undefined),
        blocks: undefined,
        metadata: undefined,
        chunkKiB: undefined,
        raidDisks: undefined,
        workingDisks: undefined,
        sync: undefined,
      };
      arrays.push(current);
      continue;
    }

    if (current === undefined || !/^\s/.test(line)) {
      current = line.trim() === '' ? current : undefined;
      continue;
    }

    const blocks = /(\d+) blocks/.exec(line);
    if (blocks !== null && current.blocks === undefined) {
      current.blocks = Number(blocks[1]);
      current.metadata = /super (\S+)/.exec(line)?.[1];
      // raid0 prints "256k chunks", raid10 "256K chunks".
      const chunk = /(\d+)[kK] chunks/.exec(line);
      current.chunkKiB = chunk === null ? undefined : Number(chunk[1]);
      const counts = /\[(\d+)\/(\d+)\]/.exec(line);
      if (counts !== null) {
        current.raidDisks = Number(counts[1]);
        current.workingDisks = Number(counts[2]);
      }
    }

    const sync = /(resync|recovery|reshape|check)\s*=\s*([\d.]+)%/.exec(line);
    if (sync !== null) {
      current.sync = { action: sync[1] as string, percent: Number(sync[2]) };
    }
  }

  return { personalities, arrays };
}

function parseMdstatMember(word: string): MdstatMember | undefined {
  const match = /^([^[\s]+)\[(\d+)\]((?:\([A-Z]\))*)$/.exec(word);
  if (match === null) {
    return undefined;
  }

  const flags = match[3] ?? '';
  return {
    name: match[1] as string,
    slot: Number(match[2]),
    faulty: flags.includes('(F)'),
    spare: flags.includes('(S)'),
  };
}

/** An assembled array as mdadm --detail --export describes it. */
export interface ArrayDetail {
  level: string | undefined;
  raidDevices: number | undefined;
  metadata: string | undefined;
  uuid: string;
  /** The name under /dev/md/, when mdadm made one: "ctrvol". */
  devname: string | undefined;
  /** The superblock's name: "any:ctrvol", "ip-10-0-0-1:ctrvol". */
  name: string | undefined;
  members: { path: string; role: number | 'spare' }[];
}

/**
 * Members are printed as MD_DEVICE_<key>_ROLE and MD_DEVICE_<key>_DEV pairs. The key is the sysfs
 * name mangled to [A-Za-z0-9_], and older mdadm versions drop its first letter ("ev_nvme1n1"
 * rather than "dev_nvme1n1"), so pairs are matched by key and the path is read from _DEV.
 */
export function parseDetailExport(text: string): ArrayDetail | undefined {
  const fields = parseExport(text);
  const uuid = fields.MD_UUID;
  if (uuid === undefined) {
    return undefined;
  }

  const members: ArrayDetail['members'] = [];
  for (const [key, value] of Object.entries(fields)) {
    const match = /^MD_DEVICE_(.+)_DEV$/.exec(key);
    if (match !== null) {
      const role = fields[`MD_DEVICE_${match[1]}_ROLE`];
      members.push({
        path: value,
        role: role === undefined || role === 'spare' ? 'spare' : Number(role),
      });
    }
  }

  members.sort((a, b) => (a.role === 'spare' ? 1e9 : a.role) - (b.role === 'spare' ? 1e9 : b.role));
  return {
    level: fields.MD_LEVEL,
    raidDevices: toNumber(fields.MD_DEVICES),
    metadata: fields.MD_METADATA,
    uuid: uuid.toLowerCase(),
    devname: fields.MD_DEVNAME,
    name: fields.MD_NAME,
    members,
  };
}

/** A member's superblock as mdadm --examine --export prints it. */
export interface Superblock {
  level: string | undefined;
  raidDevices: number | undefined;
  name: string | undefined;
  uuid: string;
  deviceUuid: string | undefined;
  events: number | undefined;
  updateTime: number | undefined;
}

/**
 * Undefined when the device carries no md superblock: mdadm then prints nothing on stdout (its
 * "No md superblock detected" goes to stderr, with exit 1).
 */
export function parseExamineExport(text: string | undefined): Superblock | undefined {
  const fields = parseExport(text ?? '');
  const uuid = fields.MD_UUID;
  if (uuid === undefined) {
    return undefined;
  }

  return {
    level: fields.MD_LEVEL,
    raidDevices: toNumber(fields.MD_DEVICES),
    name: fields.MD_NAME,
    uuid: uuid.toLowerCase(),
    deviceUuid: fields.MD_DEV_UUID,
    events: toNumber(fields.MD_EVENTS),
    updateTime: toNumber(fields.MD_UPDATE_TIME),
  };
}

/** One ARRAY line of an mdadm.conf (or of mdadm --detail --scan). */
export interface ConfigArray {
  /** The device it names: /dev/md/ctrvol, /dev/md0, or <ignore>. */
  device: string;
  uuid: string | undefined;
  name: string | undefined;
  metadata: string | undefined;
  /** The line as written, continuation lines joined. */
  line: string;
}

export function parseMdadmConf(text: string): ConfigArray[] {
  // A line that starts with white space continues the one before it (mdadm.conf(5)).
  const logical: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '');
    if (/^\s/.test(line) && logical.length > 0) {
      logical[logical.length - 1] += ` ${line.trim()}`;
    } else if (line.trim() !== '') {
      logical.push(line.trim());
    }
  }

  const arrays: ConfigArray[] = [];
  for (const line of logical) {
    const [keyword, device, ...words] = line.split(/\s+/);
    if (keyword?.toUpperCase() !== 'ARRAY' || device === undefined) {
      continue;
    }

    const fields = new Map<string, string>();
    for (const word of words) {
      const equals = word.indexOf('=');
      if (equals > 0) {
        fields.set(word.slice(0, equals).toLowerCase(), word.slice(equals + 1));
      }
    }

    arrays.push({
      device,
      uuid: fields.get('uuid')?.toLowerCase(),
      name: fields.get('name'),
      metadata: fields.get('metadata'),
      line,
    });
  }

  return arrays;
}

/**
 * Whether a superblock name is ctrvol's: "ctrvol" itself, or with any homehost before a colon
 * ("any:ctrvol" as ctrvol creates it, "ip-10-0-0-1:ctrvol" if someone made it by hand).
 */
export function isArrayName(name: string | undefined, wanted = arrayName): boolean {
  if (name === undefined) {
    return false;
  }

  const colon = name.indexOf(':');
  return (colon === -1 ? name : name.slice(colon + 1)) === wanted;
}

/**
 * Drops the given ARRAY entries (continuation lines included) from an mdadm.conf, keeping every
 * other line as it was written.
 */
export function removeConfigArrays(text: string, stale: readonly ConfigArray[]): string {
  const drop = (entry: ConfigArray) =>
    stale.some(
      (array) =>
        array.device === entry.device && (array.uuid === undefined || array.uuid === entry.uuid),
    );
  const groups: string[][] = [];
  for (const line of text.split('\n')) {
    const last = groups.at(-1);
    if (last !== undefined && /^\s+\S/.test(line) && /^ARRAY\s/i.test(last[0] ?? '')) {
      last.push(line);
    } else {
      groups.push([line]);
    }
  }

  return groups
    .filter((group) => {
      const [entry] = /^ARRAY\s/i.test(group[0] ?? '') ? parseMdadmConf(group.join('\n')) : [];
      return entry === undefined || !drop(entry);
    })
    .flat()
    .join('\n');
}

/** What the planner needs to know about one member. */
export interface MemberFacts {
  /** /dev/ and the kernel name (/dev/nvme1n1), which is how /proc/mdstat names members. */
  path: string;
  /** --examine --export stdout; empty or undefined when mdadm found no superblock. */
  examine: string | undefined;
  /**
   * No filesystem, partition table or other signature besides noise (isBlank from
   * host/signatures.ts). An md superblock of ctrvol's own is not counted against it.
   */
  blank: boolean;
  /** What is on it when not blank, for the message: "xfs with label data". */
  signatures?: string;
}

export interface ArrayFacts {
  level: RaidLevel;
  members: readonly MemberFacts[];
  /** /proc/mdstat; undefined when it does not exist (no md driver loaded yet: no arrays). */
  mdstat: string | undefined;
  /** --detail --export of each array mdstat lists, by device path (/dev/md127). */
  details: Readonly<Record<string, string>>;
  /** mdadm.conf files that may name the array, by path (/etc/mdadm.conf). */
  configs: Readonly<Record<string, string | undefined>>;
  /** The array UUID ctrvol recorded when it built the array, if it did. */
  recordedUuid?: string;
  name?: string;
}

export interface StaleConfig {
  file: string;
  arrays: ConfigArray[];
}

export type ArrayPlan =
  | {
      action: 'use';
      /** The assembled array: /dev/md127 even when /dev/md/ctrvol also names it. */
      device: string;
      uuid: string;
      reason: string;
      warnings: string[];
      staleConfig: StaleConfig[];
      commands: MdadmArgs[];
    }
  | {
      action: 'assemble' | 'create' | 'rebuild';
      /** Where the array will be once the commands have run. */
      device: string;
      uuid: string | undefined;
      reason: string;
      warnings: string[];
      staleConfig: StaleConfig[];
      commands: MdadmArgs[];
    };

/**
 * Decides what to do about ctrvol's array: use it as it is (it came back assembled after a
 * reboot, perhaps as /dev/md127), assemble it from members that carry its superblock, create it on
 * blank members, or rebuild it when the members are blank but an old config or record still names
 * an array (a stop/start gives new, empty instance-store disks and keeps the root volume). It
 * never creates over a superblock, and refuses with an EnvironmentError whatever it cannot
 * explain: a member in someone else's array, members of two arrays, a mixture of blank members and
 * members of ctrvol's array, or an array whose shape does not match the selection.
 */
export function planArray(facts: ArrayFacts): ArrayPlan {
  const name = facts.name ?? arrayName;
  const wanted = facts.members.map((member) => member.path);
  const wantedNames = new Set(wanted.map((member) => path.basename(member)));
  const mdstat = parseMdstat(facts.mdstat ?? '');
  const configArrays = Object.entries(facts.configs).map(([file, text]) => ({
    file,
    arrays: parseMdadmConf(text ?? '').filter(
      (array) => isArrayName(array.name, name) || array.device === `/dev/md/${name}`,
    ),
  }));
  const recorded = facts.recordedUuid?.toLowerCase();
  const refuse = (why: string, hint?: string) =>
    new EnvironmentError(why, hint === undefined ? {} : { hint });

  // 1. Arrays already known to the kernel that are ctrvol's or that hold one of the members.
  const involved = mdstat.arrays
    .map((array) => ({
      array,
      detail: parseDetailExport(facts.details[`/dev/${array.name}`] ?? ''),
    }))
    .filter(
      ({ array, detail }) =>
        isArrayName(detail?.name, name) ||
        (recorded !== undefined && detail?.uuid === recorded) ||
        array.members.some((member) => wantedNames.has(member.name)),
    );
  // The UUID ctrvol recorded identifies its array better than a name anyone can give.
  const byUuid = involved.filter(
    ({ array, detail }) => array.active && recorded !== undefined && detail?.uuid === recorded,
  );
  const active =
    byUuid.length > 0
      ? byUuid
      : involved.filter(({ array, detail }) => array.active && isArrayName(detail?.name, name));
  if (active.length > 1) {
    throw refuse(
      `${active.length} arrays named ${name} are assembled: ` +
        active.map(({ array }) => `/dev/${array.name}`).join(', '),
      'stop the one that is not in use with mdadm --stop',
    );
  }

  for (const { array, detail } of involved) {
    const held = array.members
      .map((member) => member.name)
      .filter((member) => wantedNames.has(member))
      .sort(compareDeviceNames);
    if (array.active && !active.some((chosen) => chosen.array === array) && held.length > 0) {
      throw refuse(
        `${held.join(', ')} belongs to /dev/${array.name} (name ${detail?.name ?? 'unknown'}, ` +
          `UUID ${detail?.uuid ?? 'unknown'}), not ctrvol's array`,
        'someone else assembled this array; choose other devices or stop that array yourself',
      );
    }
  }

  const [running] = active;
  if (running !== undefined) {
    const { array, detail } = running;
    const uuid = detail?.uuid ?? recorded ?? 'unknown';
    const held = array.members.map((member) => member.name);
    const extra = held.filter((member) => !wantedNames.has(member));
    if (extra.length > 0) {
      throw refuse(
        `/dev/${array.name} (ctrvol's array) holds ${extra.join(', ')}, which the configuration ` +
          'does not select',
        'check volume.instanceStore or volume.devices against the array',
      );
    }

    if (detail?.level !== undefined && detail.level !== facts.level) {
      throw refuse(
        `/dev/${array.name} (ctrvol's array) is ${detail.level}, and ${facts.level} is configured`,
        'ctrvol does not convert an array; configure its level or wipe the members yourself',
      );
    }

    const warnings: string[] = [];
    const missing = [...wantedNames].filter((member) => !held.includes(member));
    if (missing.length > 0 || (array.workingDisks ?? 0) < (array.raidDisks ?? 0)) {
      warnings.push(
        `/dev/${array.name} is degraded (${array.workingDisks ?? '?'} of ` +
          `${array.raidDisks ?? '?'} devices working${
            missing.length === 0 ? '' : `; not in it: ${missing.join(', ')}`
          })`,
      );
    }

    if (array.sync !== undefined) {
      warnings.push(`/dev/${array.name} is in ${array.sync.action} at ${array.sync.percent}%`);
    }

    return {
      action: 'use',
      device: `/dev/${array.name}`,
      uuid,
      reason: `ctrvol's array is already assembled as /dev/${array.name}`,
      warnings,
      staleConfig: staleExcept(configArrays, uuid),
      commands: [],
    };
  }

  // Inactive arrays holding the members (a partial incremental assembly at boot) are stopped
  // first; nothing can be assembled from members the kernel still holds.
  const stops = involved
    .filter(({ array }) => array.members.some((member) => wantedNames.has(member.name)))
    .map(({ array }) => buildStopArgs(`/dev/${array.name}`));

  // 2. Nothing assembled: what is written on the members decides.
  const superblocks = facts.members.map((member) => ({
    member,
    superblock: parseExamineExport(member.examine),
  }));
  const foreign = superblocks.filter(
    ({ superblock }) =>
      superblock !== undefined &&
      !isArrayName(superblock.name, name) &&
      superblock.uuid !== recorded,
  );
  if (foreign.length > 0) {
    throw refuse(
      foreign
        .map(
          ({ member, superblock }) =>
            `${member.path} is a member of another array (name ${superblock?.name ?? 'none'}, ` +
            `UUID ${superblock?.uuid})`,
        )
        .join('; '),
      'ctrvol never writes over an md superblock it did not make; wipe it yourself if the data ' +
        'is not needed',
    );
  }

  const carrying = superblocks.filter(({ superblock }) => superblock !== undefined);
  if (carrying.length === facts.members.length && carrying.length > 0) {
    const uuids = [...new Set(carrying.map(({ superblock }) => superblock?.uuid))];
    if (uuids.length > 1) {
      throw refuse(
        `the members carry superblocks of ${uuids.length} different arrays named ${name}: ` +
          carrying.map(({ member, superblock }) => `${member.path} ${superblock?.uuid}`).join(', '),
        'two separate ctrvol arrays were built from these disks; wipe the one not wanted',
      );
    }

    const uuid = uuids[0] as string;
    const [first] = carrying;
    const size = first?.superblock?.raidDevices;
    if (size !== undefined && size !== facts.members.length) {
      throw refuse(
        `ctrvol's array ${uuid} was built from ${size} devices, and ${facts.members.length} are ` +
          'selected',
        'an array is never rebuilt over data; select the same devices or wipe them yourself',
      );
    }

    const level = first?.superblock?.level;
    if (level !== undefined && level !== facts.level) {
      throw refuse(
        `ctrvol's array ${uuid} on these devices is ${level}, and ${facts.level} is configured`,
        'ctrvol does not convert an array; configure its level or wipe the members yourself',
      );
    }

    return {
      action: 'assemble',
      device: `/dev/md/${name}`,
      uuid,
      reason: `every member carries ctrvol's array ${uuid}, which is not assembled`,
      warnings: [],
      staleConfig: staleExcept(configArrays, uuid),
      commands: [...stops, buildAssembleArgs(uuid, wanted, name)],
    };
  }

  if (carrying.length > 0) {
    const blankOnes = superblocks.filter(({ superblock }) => superblock === undefined);
    throw refuse(
      `${carrying.map(({ member }) => member.path).join(', ')} carry ctrvol's array ` +
        `${carrying[0]?.superblock?.uuid}, but ` +
        `${blankOnes.map(({ member }) => member.path).join(', ')} ` +
        'do not',
      'a member was replaced or wiped; ctrvol will not guess which copy of the data to keep',
    );
  }

  const used = facts.members.filter((member) => !member.blank);
  if (used.length > 0) {
    throw refuse(
      used
        .map((member) => `${member.path} carries ${member.signatures ?? 'a signature'}`)
        .join('; ') + '; ctrvol builds arrays only from blank devices',
      "this looks like someone else's data: check the configured devices",
    );
  }

  const create = buildCreateArgs({ level: facts.level, members: wanted, name });
  const stale = configArrays.filter(({ arrays }) => arrays.length > 0);
  if (stale.length > 0 || recorded !== undefined) {
    const what = [
      ...stale.map(
        ({ file, arrays }) =>
          `${file} names ${arrays.map((array) => array.uuid ?? array.device).join(', ')}`,
      ),
      ...(recorded === undefined ? [] : [`ctrvol recorded ${recorded}`]),
    ].join('; ');
    return {
      action: 'rebuild',
      device: `/dev/md/${name}`,
      uuid: undefined,
      reason:
        `the members are blank while the old array is remembered (${what}): ` +
        'new instance-store disks after a stop and start',
      warnings: [],
      staleConfig: stale,
      commands: [...stops, create],
    };
  }

  return {
    action: 'create',
    device: `/dev/md/${name}`,
    uuid: undefined,
    reason: `${facts.members.length} blank members and no array anywhere`,
    warnings: [],
    staleConfig: [],
    commands: [...stops, create],
  };
}

/** Config lines naming ctrvol's array with a UUID other than the one in use. */
function staleExcept(configs: StaleConfig[], uuid: string): StaleConfig[] {
  return configs
    .map(({ file, arrays }) => ({ file, arrays: arrays.filter((array) => array.uuid !== uuid) }))
    .filter(({ arrays }) => arrays.length > 0);
}

function toNumber(text: string | undefined): number | undefined {
  return text === undefined || text === '' ? undefined : Number(text);
}
