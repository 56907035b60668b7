/**
 * Development aid: one idle cell (part 5) without writing results, e.g.
 * `node --import tsx test/bench/idle-cell.ts 10000 [--window 6000] [--idle-timeout 20000] [--prof DIR]`.
 * Not part of `npm run bench`; it prints one line.
 * @module
 */
import { readdirSync, statSync } from 'node:fs';
import { measureIdle } from './parts/idle.js';
import { profileTable, summarizeProfile } from './profile.js';
import { heartwire } from './lib/systems.js';
import type { System } from './lib/systems.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const count = Number(args[0] ?? 10_000);

const idleTimeout = flag('--idle-timeout');
const systems: Record<string, System> = {
  heartwire: heartwire(idleTimeout === undefined ? {} : { idleTimeout: Number(idleTimeout) }),
};
const id = 'heartwire';
const system = systems[id];
if (system === undefined) throw new Error(`unknown system ${id}`);
const r = await measureIdle(system, count, {
  settleMs: Number(flag('--settle') ?? 1000),
  windowMs: Number(flag('--window') ?? 6000),
  profileDir: flag('--prof'),
});
const kib = (b: number): string => (b / 1024).toFixed(1);
console.log(
  `${id} ${count}: server cpu ${r.serverCpu.toFixed(2)} % client ${r.clientCpu.toFixed(2)} % others ${r.otherCpu.toFixed(0)} %, ` +
    `server ${kib(r.serverRssPerConnection)} KiB/conn rss, ${kib(r.serverJsPerConnection)} KiB/conn js${r.error ? ' ERROR ' + r.error : ''}`,
);
const prof = flag('--prof');
if (prof !== undefined && r.monoWindow !== undefined) {
  // The server's main-thread profile (the largest), cut to the CPU window.
  const files = readdirSync(prof)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => `${prof}/${f}`)
    .sort((a, b) => statSync(b).size - statSync(a).size);
  if (files[0] !== undefined)
    console.log(profileTable(summarizeProfile(files[0], { top: 30, window: r.monoWindow })));
}
