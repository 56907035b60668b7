/**
 * The orchestrator's handle on a child process (`child.ts`): spawn, wait until ready, send
 * commands and await their replies, each with a time bound; kill as a last resort.
 * @module
 */
import { execFileSync, fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildConfig, Reply, Ready } from './ipc.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * The children run the JavaScript that `tsc` compiles from the sources (`tsconfig.bench.json`, into
 * `.bench-build/`, once per orchestrator process, about 5 s), as an application runs heartwire from
 * its package. Through `tsx` a process also holds the transpiled sources and their source maps:
 * heartwire's bench server held 8.4 MB of heap that way against 6.4–6.9 MB compiled, which put it
 * above V8's 8 MB threshold for incremental marking while the raw framing's (5.8 MB) stayed below
 * (docs/IMPLEMENTATION.md, "Benchmark processes and V8"). `BENCH_TSX=1` runs them through `tsx`.
 */
const USE_TSX = process.env.BENCH_TSX === '1';
const BUILD = path.join(REPO, '.bench-build');
const CHILD_SCRIPT = USE_TSX
  ? fileURLToPath(new URL('../child.ts', import.meta.url))
  : path.join(BUILD, 'test', 'bench', 'child.js');
let compiled = false;

/** Compile the sources the children run, once per process (see {@link CHILD_SCRIPT}). */
function compileChildren(): void {
  if (USE_TSX || compiled) return;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.bench.json'], { cwd: REPO, stdio: 'inherit' });
  compiled = true;
}

/** Options of {@link spawnChild}. */
export interface SpawnOptions {
  /**
   * Write CPU profiles into `dir` (`--cpu-prof`; Node names them, one per thread: the main
   * thread's has thread id 0, see {@link mainThreadProfile}).
   */
  cpuProfile?: { dir: string };
  /** Kill the child after this long whatever happens (ms). Default 120 000. */
  hardLimitMs?: number;
  /** Extra V8/Node flags. */
  execArgv?: string[];
}

/** A running child process of the bench. */
export class Child {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly killTimer: NodeJS.Timeout;
  private exited = false;
  /** Resolves with the port the child listens on (servers, proxy) once it is ready. */
  readonly ready: Promise<number | undefined>;

  constructor(
    readonly label: string,
    private readonly proc: ChildProcess,
    hardLimitMs: number,
  ) {
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (message: Ready | Reply): void => {
        if ('ready' in message) {
          resolve(message.port);
          return;
        }
        const waiter = this.pending.get(message.id);
        if (waiter === undefined) return;
        this.pending.delete(message.id);
        if (message.ok) waiter.resolve(message.result);
        else waiter.reject(new Error(`${label}: ${message.error}`));
      };
      proc.on('message', onMessage);
      proc.once('exit', (code, signal) => {
        this.exited = true;
        clearTimeout(this.killTimer);
        const error = new Error(`${label} exited (code ${code}, signal ${signal})`);
        reject(error);
        for (const waiter of this.pending.values()) waiter.reject(error);
        this.pending.clear();
      });
    });
    this.ready.catch(() => {});
    this.killTimer = setTimeout(() => this.kill(), hardLimitMs);
    this.killTimer.unref();
  }

  /** The child's process id. */
  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Send a command; rejects if the child does not answer within `timeoutMs`. */
  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`${this.label} has exited`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.label}: no answer to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.send({ id, cmd, args });
    });
  }

  /** Ask the child to exit (it writes its CPU profile if profiling); kill it after `graceMs`. */
  async exit(graceMs = 5000): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.proc.once('exit', () => resolve()));
    this.call('exit', {}, graceMs).catch(() => {});
    const timer = setTimeout(() => this.kill(), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Kill the child (SIGKILL). */
  kill(): void {
    if (!this.exited) this.proc.kill('SIGKILL');
  }
}

/** Start a child process running `child.ts` with `config`. */
export function spawnChild(label: string, config: ChildConfig, options: SpawnOptions = {}): Child {
  // BENCH_CHILD_FLAGS: extra node flags for the children while investigating (e.g. `--trace-gc`).
  const extra = process.env.BENCH_CHILD_FLAGS?.split(' ').filter((f) => f !== '') ?? [];
  // BENCH_SERVER_FLAGS: the same for the server processes only (e.g. `--trace-gc-nvp`).
  const serverOnly = config.role === 'server' ? (process.env.BENCH_SERVER_FLAGS?.split(' ') ?? []) : [];
  compileChildren();
  const execArgv = [
    ...(USE_TSX ? ['--import', 'tsx'] : []),
    '--expose-gc',
    ...extra,
    ...serverOnly.filter((f) => f !== ''),
    ...(options.execArgv ?? []),
  ];
  if (options.cpuProfile !== undefined) {
    mkdirSync(options.cpuProfile.dir, { recursive: true });
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfile.dir}`);
  }
  const child = fork(CHILD_SCRIPT, [JSON.stringify(config)], {
    cwd: REPO,
    execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Child(label, child, options.hardLimitMs ?? 120_000);
}

/**
 * The main thread's profile in a `--cpu-prof` directory (`CPU.<date>.<time>.<pid>.<tid>.<seq>`,
 * tid 0). The others come from worker threads, such as the ESM loader thread of tsx.
 */
export function mainThreadProfile(dir: string): string | undefined {
  const file = readdirSync(dir).find((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f));
  return file === undefined ? undefined : path.join(dir, file);
}
