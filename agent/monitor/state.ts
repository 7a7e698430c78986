import path from 'node:path';
import { readJson, writeJsonDurably } from '../state/files.js';

/**
 * What the monitor carries from one tick to the next, and across restarts: which thresholds are
 * crossed (so each crossing is logged once), which problems are open, the prune totals that the
 * metrics report as counters, and the last tick, for `ctrvol status`.
 */
export interface MonitorState {
  version: 1;
  lastTick: { at: string; succeeded: boolean; problems: string[] } | undefined;
  crossed: { root: boolean; volume: boolean };
  problems: { unmounted: boolean; readOnly: boolean };
  /** The device size at which growing last failed, so that the failure is logged once. */
  growRefusedAt?: number;
  prune: {
    runsTotal: number;
    imagesRemovedTotal: number;
    bytesFreedTotal: number;
    last:
      { at: string; imagesRemoved: number; bytesFreed: number; reachedTarget: boolean } | undefined;
  };
}

export const emptyMonitorState = (): MonitorState => ({
  version: 1,
  lastTick: undefined,
  crossed: { root: false, volume: false },
  problems: { unmounted: false, readOnly: false },
  prune: { runsTotal: 0, imagesRemovedTotal: 0, bytesFreedTotal: 0, last: undefined },
});

export const monitorStateFile = (stateDir: string) => path.join(stateDir, 'monitor.json');

/** A missing or damaged record starts afresh: the monitor must keep running either way. */
export async function readMonitorState(stateDir: string): Promise<MonitorState> {
  const state = await readJson<MonitorState>(monitorStateFile(stateDir)).catch(() => undefined);
  return state?.version === 1 ? { ...emptyMonitorState(), ...state } : emptyMonitorState();
}

export function writeMonitorState(stateDir: string, state: MonitorState): Promise<void> {
  return writeJsonDurably(monitorStateFile(stateDir), state);
}

/** How the last `ctrvol setup` ended, written by setup itself. */
export interface LastSetup {
  outcome: 'ok' | 'failed';
  at: string;
  error?: string;
}

export const lastSetupFile = (stateDir: string) => path.join(stateDir, 'last-setup.json');

export async function readLastSetup(stateDir: string): Promise<LastSetup | undefined> {
  return readJson<LastSetup>(lastSetupFile(stateDir)).catch(() => undefined);
}
