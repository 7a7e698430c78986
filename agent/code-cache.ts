/**
 * The code cache's folder for this process (see embedded.ts), kept apart from the loader so that
 * setting it costs the entry point nothing: the loader and the modules it needs (vm, zlib) load
 * only with the first embedded bundle. Each bundle carries its own copy of this module, so the
 * setting lives on the global object where all of them find it.
 */
const setting = Symbol.for('ctrvol.codeCacheDir');
type WithSetting = typeof globalThis & { [setting]?: string };

/** Turns the code cache on (a folder this process may write) or off (undefined). */
export function useCodeCache(dir: string | undefined): void {
  (globalThis as WithSetting)[setting] = dir;
}

export function getCodeCacheDir(): string | undefined {
  return (globalThis as WithSetting)[setting];
}
