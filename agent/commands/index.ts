/**
 * Every command and what they share, behind one entry that the entry point loads lazily. The
 * build embeds this as compressed text and compiles it only when a command runs (see
 * scripts/build.mjs), so `ctrvol --version` and `ctrvol --help` cost little more than Node.
 */
export { createLogger } from '../log/logger.js';
export { check, formatCheck } from './check.js';
export { monitor } from './monitor.js';
export { prune } from './prune.js';
export { setup } from './setup.js';
export { formatStatus, getStatus } from './status.js';
export { verify } from './verify.js';
