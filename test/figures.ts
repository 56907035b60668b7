/**
 * Figures the tests measure (detection times, recovery times, memory, counts): one line each,
 * the lines the lead collects. They go to `test-results/figures.txt` (git-ignored; rewritten by
 * each test run), not between mocha's reporter dots; the file's path is printed once when the
 * run exits. `HEARTWIRE_FIGURES=1` prints each line as it comes as well.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the figures of a test run go. */
export const FIGURES_FILE = fileURLToPath(new URL('../test-results/figures.txt', import.meta.url));

/**
 * One count per process, kept on `globalThis`: mocha may load this module twice (through
 * `require` and through `import`), and both copies must share the file.
 */
const state = ((globalThis as Record<symbol, { lines: number } | undefined>)[
  Symbol.for('heartwire.test.figures')
] ??= { lines: 0 });

/** Record one summary line (`[figures] …`). */
export function report(line: string): void {
  if (state.lines === 0) {
    mkdirSync(path.dirname(FIGURES_FILE), { recursive: true });
    writeFileSync(FIGURES_FILE, `# heartwire test figures, ${new Date().toISOString()}\n`);
    process.once('exit', () => {
      const where = path.relative(process.cwd(), FIGURES_FILE);
      const n = state.lines;
      process.stdout.write(`  [figures] ${n} line${n === 1 ? '' : 's'} in ${where}\n`);
    });
  }
  state.lines++;
  appendFileSync(FIGURES_FILE, `[figures] ${line}\n`);
  if (process.env.HEARTWIRE_FIGURES === '1') process.stdout.write(`      [figures] ${line}\n`);
}
