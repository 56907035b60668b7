/**
 * Run a TypeScript program (a README sample, a TSDoc example, a test's own snippet) the way a user
 * would: written to a temporary `.mts` module, its `heartwire` and `fast-check` imports pointed at
 * this checkout, run with tsx in a child process; its exit status and output (bounded).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from '../node/helpers.js';
import { startTsx } from './child.js';

const url = (file: string): string => pathToFileURL(path.join(REPO_ROOT, file)).href;

/**
 * Point a program's `heartwire`, `heartwire/testing`, `heartwire/testing/fault-proxy` and
 * `fast-check` imports at this checkout's sources (the program runs from a temporary directory,
 * where none of them resolve).
 */
export function pointImportsAtCheckout(code: string): string {
  return code
    .replace(/from\s+'heartwire\/testing\/fault-proxy'/g, `from '${url('src/testing/fault-proxy.ts')}'`)
    .replace(/from\s+'heartwire\/testing'/g, `from '${url('src/testing/index.ts')}'`)
    .replace(/from\s+'heartwire'/g, `from '${url('src/index.ts')}'`)
    .replace(/from\s+'fast-check'/g, `from '${url('node_modules/fast-check/lib/fast-check.js')}'`);
}

export interface ModuleRun {
  /** The exit code; null when the child was killed (by the timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunModuleOptions {
  /** The child is killed (SIGKILL) after this many ms; the run then resolves with code null. */
  timeout: number;
  /** The module's file name (it shows in the child's stack traces); default `main.mts`. */
  name?: string;
}

/**
 * Run `source` (imports rewritten by pointImportsAtCheckout) with `node --import tsx` in the
 * repository root, stdin closed; resolves once the child has exited and its output is read. The
 * module's temporary directory is removed afterwards.
 */
export function runModule(source: string, options: RunModuleOptions): Promise<ModuleRun> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'heartwire-run-'));
  const file = path.join(dir, options.name ?? 'main.mts');
  writeFileSync(file, pointImportsAtCheckout(source));
  const run = startTsx([file]);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), options.timeout);
  return run.closed.then((code) => {
    clearTimeout(timer);
    rmSync(dir, { recursive: true, force: true });
    return { code, stdout: run.stdout, stderr: run.stderr };
  });
}
