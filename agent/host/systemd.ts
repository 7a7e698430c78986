import { access } from 'node:fs/promises';
import type { Runner } from '../exec.js';

/** sd_booted(3): systemd is PID 1 exactly when this directory exists. */
export function isSystemdRunning(): Promise<boolean> {
  return access('/run/systemd/system').then(
    () => true,
    () => false,
  );
}

export async function isUnitActive(run: Runner, unit: string): Promise<boolean> {
  // is-active exits 0 only for "active"; 3 for inactive, 4 for a unit that does not exist.
  const result = await run.run('systemctl', ['is-active', '--quiet', unit], {
    okExitCodes: [1, 2, 3, 4],
  });
  return result.exitCode === 0;
}
