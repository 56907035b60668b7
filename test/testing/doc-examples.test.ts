/**
 * The `@example` blocks of `heartwire/testing` (src/testing/*.ts) run as written: each is a whole
 * program importing from `heartwire` / `heartwire/testing` (pointed at this checkout's sources),
 * run with tsx in a child process; it must exit 0, and every `// → text` comment in it names
 * output it must print.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { REPO_ROOT } from '../node/helpers.js';

const url = (file: string): string => pathToFileURL(path.join(REPO_ROOT, file)).href;

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

function rewrite(code: string): string {
  return code
    .replace(/from\s+'heartwire\/testing\/fault-proxy'/g, `from '${url('src/testing/fault-proxy.ts')}'`)
    .replace(/from\s+'heartwire\/testing'/g, `from '${url('src/testing/index.ts')}'`)
    .replace(/from\s+'heartwire'/g, `from '${url('src/index.ts')}'`)
    .replace(/from\s+'fast-check'/g, `from '${url('node_modules/fast-check/lib/fast-check.js')}'`);
}

function run(file: string, ms: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('heartwire/testing: the TSDoc examples run as written and print what they say', function () {
  this.timeout(120_000);
  const dir = path.join(REPO_ROOT, 'src/testing');
  let tmp: string | undefined;
  after(() => {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  for (const file of files) {
    const examples = docExamples(readFileSync(path.join(dir, file), 'utf8'));
    examples.forEach(({ code, line }, index) => {
      it(`src/testing/${file}:${line}`, async () => {
        expect(code, 'a whole program: it imports what it uses').to.match(/^import /m);
        tmp ??= mkdtempSync(path.join(os.tmpdir(), 'heartwire-doc-'));
        const module = path.join(tmp, `${file.replace(/\.ts$/, '')}-${index}.mts`);
        writeFileSync(module, rewrite(code));
        const result = await run(module, 60_000);
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
