import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { containerdDropInPath, renderContainerdDropIn } from '../../systemd/units.js';
import { act } from '../context.js';
import { alreadyDone, changed, type Step } from '../step.js';

/**
 * containerd learns to wait for ctrvol-setup at every boot. Only the drop-in is written: no
 * fstab line and no .mount unit, so a device missing at boot cannot stall the boot.
 */
export const wireStep: Step = {
  name: 'wire',
  async run(context, logger) {
    const file = path.join(context.paths.root, containerdDropInPath);
    const wanted = renderContainerdDropIn(context.config.onFailure);
    const current = await readFile(file, 'utf8').catch(() => undefined);
    if (current === wanted) {
      return alreadyDone(`${file} is up to date`);
    }

    await act(context, logger, `write ${file}`, async () => {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, wanted, { mode: 0o644 });
      if (context.systemd) {
        await context.run.run('systemctl', ['daemon-reload']);
      }
    });

    return changed();
  },
};
