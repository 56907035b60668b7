/**
 * Child processes for the tests that run a program the way a user would (the CLI, the
 * conformance command, a cluster fixture, a broker, redis-server): spawned with stdin closed and
 * stdout/stderr collected as text, a bounded wait for a line of output, a bounded stop.
 * Also a throwaway self-signed certificate (openssl) for the TLS tests.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../node/helpers.js';

/** A child process and its output so far. */
export interface OutputChild {
  readonly child: ChildProcess;
  /** Everything the child wrote to stdout so far. */
  stdout: string;
  /** Everything the child wrote to stderr so far. */
  stderr: string;
  /** stdout and stderr interleaved in the order they arrived. */
  output: string;
  /** Resolves with the exit code (null when a signal ended it) at the child's 'exit'. */
  readonly exited: Promise<number | null>;
  /** Resolves at 'close': the child has exited and all of its output is in. */
  readonly closed: Promise<number | null>;
  /**
   * Resolves with the first match of `pattern` in the child's stdout (`in: 'output'`: in stdout
   * and stderr together), already written or yet to come. Rejects after `timeoutMs`, or as soon
   * as the child's output has ended without a match.
   */
  waitFor(
    pattern: RegExp,
    timeoutMs: number,
    options?: { in?: 'stdout' | 'output' },
  ): Promise<RegExpMatchArray>;
  /**
   * Unless it has exited already: send `signal` (default SIGKILL) and wait for the exit; if
   * `killAfterMs` is given and the child is still running then, SIGKILL it.
   */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<void>;
}

/** Spawn `command args` in the repository root (or `cwd`), stdin closed, output collected. */
export function spawnWithOutput(
  command: string,
  args: readonly string[],
  options: { cwd?: string } = {},
): OutputChild {
  const child = spawn(command, args, { cwd: options.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  child.on('error', () => {}); // a failed spawn shows as 'exit'/'close' with no output
  let ended = false;
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const listener of [...listeners]) listener();
  };
  const result: OutputChild = {
    child,
    stdout: '',
    stderr: '',
    output: '',
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    closed: new Promise((resolve) =>
      child.once('close', (code) => {
        ended = true;
        notify();
        resolve(code);
      }),
    ),
    waitFor(pattern, timeoutMs, { in: where = 'stdout' } = {}) {
      return new Promise((resolve, reject) => {
        const done = (): void => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        const failure = (why: string): Error =>
          new Error(`${why} ${pattern} in:\n${result.stdout}\n${result.stderr}`);
        const check = (): void => {
          const match = pattern.exec(where === 'stdout' ? result.stdout : result.output);
          if (match !== null) {
            done();
            resolve(match);
          } else if (ended) {
            done();
            reject(failure(`the child's output ended (exit ${child.exitCode}, ${child.signalCode}) with no`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(failure(`${timeoutMs} ms and no`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async stop(signal = 'SIGKILL', killAfterMs) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer =
        killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      await result.exited;
      clearTimeout(timer);
    },
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    result.stdout += chunk;
    result.output += chunk;
    notify();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    result.stderr += chunk;
    result.output += chunk;
    notify();
  });
  return result;
}

/** `node --import tsx ...args` in the repository root (a .ts file runs from the sources). */
export function startTsx(args: readonly string[]): OutputChild {
  return spawnWithOutput(process.execPath, ['--import', 'tsx', ...args]);
}

/** `heartwire ...args`, run from the sources: `node --import tsx src/cli/main.ts ...args`. */
export function startCli(args: readonly string[]): OutputChild {
  return startTsx(['src/cli/main.ts', ...args]);
}

/**
 * A self-signed certificate for CN=localhost, valid one day, written by openssl to
 * `dir/key.pem` and `dir/cert.pem` (15 s bound). `skipped` says why there is none (openssl
 * missing or failed): the caller skips its test.
 */
export function selfSignedCert(dir: string): { keyFile: string; certFile: string; skipped?: string } {
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1'].concat([
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ]),
    { encoding: 'utf8', timeout: 15_000 },
  );
  if (r.error !== undefined || r.status !== 0)
    return { keyFile, certFile, skipped: `openssl is missing or failed: ${r.error?.message ?? r.stderr}` };
  return { keyFile, certFile };
}
