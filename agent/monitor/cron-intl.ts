/**
 * The `Intl` that node-cron sees in the build: the real one, except that the two date formats
 * node-cron asks for in the process's own time zone are read from Date's local-time getters.
 *
 * Why: node-cron (4.x) turns every time it considers into wall-clock fields with
 * `new Intl.DateTimeFormat('en-US', …).formatToParts(date)`, at each run it plans, whatever the
 * schedule and whether or not a time zone is given. The first Intl.DateTimeFormat in a process
 * loads ICU's locale, calendar and time-zone-name data, and the pages stay resident for the life
 * of the process: measured on the monitor daemon after 100 ticks, 7 MiB of its 62 MiB (pages of
 * ICU data in the node binary 1.1 → 5.4 MiB, malloc'd ICU objects 1.5 MiB, ICU code 1 MiB), on
 * a budget of 60 MiB. Date's local-time getters give the same fields from the same time-zone
 * rules without loading that data (measured: no change in resident memory).
 *
 * scripts/build-plugins.mjs (cronLocalTime) makes node-cron's own modules import this object
 * as `Intl`; nothing else in the bundle sees it. Tests and tsx runs use node-cron as published.
 *
 * Anything other than those two exact requests (a `timeZone`, another locale, other fields, a
 * method other than formatToParts) goes to the real Intl.DateTimeFormat: slower and heavier, but
 * never a different answer as node-cron reads it. test/unit/cron-intl.test.ts compares both,
 * and node-cron's planned runs with and without this, in seven time zones across DST changes.
 */

type Kind = 'fields' | 'offset';

/** What LocalizedTime asks for: the local date and time, field by field (getPartsFormatter). */
const fieldsRequest: Intl.DateTimeFormatOptions = {
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  weekday: 'short',
  hour12: false,
};

/** What it asks for to learn the local UTC offset, such as "GMT+5:30" (getOffsetFormatter). */
const offsetRequest: Intl.DateTimeFormatOptions = { timeZoneName: 'shortOffset' };

const weekdays = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** Which of the two requests this is, exactly; undefined for anything else. */
function getKind(locales: unknown, options: unknown): Kind | undefined {
  if (locales !== 'en-US' || typeof options !== 'object' || options === null) {
    return undefined;
  }

  // node-cron passes `timeZone: undefined` for the local zone; an absent key means the same.
  const given = Object.entries(options).filter(([, value]) => value !== undefined);
  for (const [kind, request] of [
    ['fields', fieldsRequest],
    ['offset', offsetRequest],
  ] as const) {
    const wanted = Object.entries(request);
    if (
      given.length === wanted.length &&
      wanted.every(([key, value]) => (options as Record<string, unknown>)[key] === value)
    ) {
      return kind;
    }
  }

  return undefined;
}

const pad = (value: number) => String(value).padStart(2, '0');

class LocalTimeFormat implements Intl.DateTimeFormat {
  readonly #kind: Kind;
  readonly #locales: string;
  readonly #options: Intl.DateTimeFormatOptions;
  #real: Intl.DateTimeFormat | undefined;

  constructor(kind: Kind, locales: string, options: Intl.DateTimeFormatOptions) {
    this.#kind = kind;
    this.#locales = locales;
    this.#options = { ...options };
  }

  formatToParts(value?: Date | number): Intl.DateTimeFormatPart[] {
    const date = new Date(value ?? Date.now());
    if (Number.isNaN(date.getTime())) {
      throw new RangeError('Invalid time value');
    }

    if (this.#kind === 'fields') {
      // Hours 00 to 23. This Node's ICU says "24" for midnight under hour12: false; node-cron
      // reads both as 0.
      return [
        { type: 'weekday', value: weekdays[date.getDay()] as string },
        { type: 'month', value: pad(date.getMonth() + 1) },
        { type: 'day', value: pad(date.getDate()) },
        { type: 'year', value: String(date.getFullYear()) },
        { type: 'hour', value: pad(date.getHours()) },
        { type: 'minute', value: pad(date.getMinutes()) },
        { type: 'second', value: pad(date.getSeconds()) },
      ];
    }

    const offset = -date.getTimezoneOffset();
    if (!Number.isInteger(offset)) {
      // Local mean time before a zone adopted standard time has offsets in seconds, which the
      // short form writes differently; cron never plans there, but the answer stays right.
      return this.#getReal().formatToParts(date);
    }

    const minutes = Math.abs(offset) % 60;
    const hours = `${offset < 0 ? '-' : '+'}${Math.floor(Math.abs(offset) / 60)}`;
    const name = offset === 0 ? 'GMT' : `GMT${hours}${minutes === 0 ? '' : `:${pad(minutes)}`}`;
    return [{ type: 'timeZoneName', value: name }];
  }

  format(value?: Date | number): string {
    return this.#getReal().format(value);
  }

  resolvedOptions(): Intl.ResolvedDateTimeFormatOptions {
    return this.#getReal().resolvedOptions();
  }

  formatRange(start: Date | number | bigint, end: Date | number | bigint): string {
    return this.#getReal().formatRange(start, end);
  }

  formatRangeToParts(
    start: Date | number | bigint,
    end: Date | number | bigint,
  ): Intl.DateTimeRangeFormatPart[] {
    return this.#getReal().formatRangeToParts(start, end);
  }

  #getReal(): Intl.DateTimeFormat {
    this.#real ??= new Intl.DateTimeFormat(this.#locales, this.#options);
    return this.#real;
  }
}

/**
 * Called with `new` by node-cron. A constructor that returns an object yields that object, so
 * a request it does not know gets a real Intl.DateTimeFormat.
 */
function DateTimeFormat(
  locales?: string | string[],
  options?: Intl.DateTimeFormatOptions,
): Intl.DateTimeFormat {
  const kind = getKind(locales, options);
  return kind === undefined
    ? new Intl.DateTimeFormat(locales, options)
    : new LocalTimeFormat(kind, locales as string, options as Intl.DateTimeFormatOptions);
}

/** Intl with DateTimeFormat replaced; every other member is the real one, through the prototype. */
export const cronIntl = Object.create(Intl, {
  DateTimeFormat: { value: DateTimeFormat, enumerable: true },
}) as typeof Intl;
