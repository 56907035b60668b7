/**
 * The `@example` blocks of `heartwire/testing` (src/testing/*.ts) run as written: each is a whole
 * program importing from `heartwire` / `heartwire/testing` (pointed at this checkout's sources),
 * run with tsx in a child process; it must exit 0, and every `// → text` comment in it names
 * output it must print.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { runModule } from '../helpers/run-module.js';
import { REPO_ROOT } from '../node/helpers.js';

/** The @example blocks of a source file, without their ` * ` prefixes. */
export function docExamples(source: string): { code: string; line: number }[] {
  const out: { code: string; line: number }[] = [];
  const fence = /^ \* @example\n \* ```ts\n([\s\S]*?)^ \* ```$/gm;
  for (let m = fence.exec(source); m !== null; m = fence.exec(source)) {
    out.push({
      code: m[1]!.replace(/^ \*( |$)/gm, ''),
      line: source.slice(0, m.index).split('\n').length + 2,
    });
  }
  return out;
}

describe('heartwire/testing: the TSDoc examples run as written and print what they say', function () {
  this.timeout(120_000);
  const dir = path.join(REPO_ROOT, 'src/testing');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  for (const file of files) {
    const examples = docExamples(readFileSync(path.join(dir, file), 'utf8'));
    examples.forEach(({ code, line }, index) => {
      it(`src/testing/${file}:${line}`, async () => {
        expect(code, 'a whole program: it imports what it uses').to.match(/^import /m);
        const result = await runModule(code, {
          timeout: 60_000,
          name: `${file.replace(/\.ts$/, '')}-${index}.mts`,
        });
        expect(result.code, `exit code; stderr:\n${result.stderr}\nstdout:\n${result.stdout}`).to.equal(0);
        const expected = [...code.matchAll(/\/\/ → (.*)$/gm)].map((m) => m[1]!.trim());
        expect(expected.length, 'at least one `// → output` comment').to.be.greaterThan(0);
        for (const text of expected)
          expect(result.stdout, `output of src/testing/${file}:${line}`).to.contain(text);
      });
    });
  }

  it('every runnable file of heartwire/testing with an example is covered', () => {
    const covered = files.filter((f) => docExamples(readFileSync(path.join(dir, f), 'utf8')).length > 0);
    expect(covered).to.include.members([
      'clock.ts',
      'simnet.ts',
      'simulation.ts',
      'sim-faults.ts',
      'faults.ts',
      'fault-proxy.ts',
    ]);
  });
});
