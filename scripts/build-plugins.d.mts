import type { Plugin } from 'esbuild';

export const cronLocalTime: Plugin;
