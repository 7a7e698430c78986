import { test } from 'node:test';
import { runScenario, VOL0, VOL1 } from './harness.js';
test('scratch raid', { timeout: 900_000 }, async () => {
  const r = await runScenario(
    {
      id: 'scratch-raid',
      guestScript: 'scratch-raid.sh',
      boots: 2,
      bakeConfig: `volume:\n  devices: [vol-${VOL0.slice(3)}, vol-${VOL1.slice(3)}]\n  raid: raid0\n`,
    },
    (l) => console.log(`# ${l}`),
  );
  for (const b of r.boots) {
    for (const f of ['journal-setup.txt', 'mdstat.txt', 'findmnt.txt', 'mdconf.txt', 'status.txt', 'state.json']) {
      console.log(`== boot ${b.number} ${f}\n${b.has(f) ? b.text(f) : '(none)'}`);
    }
  }
});
