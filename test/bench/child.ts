/**
 * Entry point of every child process of the bench: `node .bench-build/test/bench/child.js '<ChildConfig JSON>'`
 * (compiled by the orchestrator, see `lib/child-process.ts`; `node --import tsx child.ts` with `BENCH_TSX=1`).
 * A server or client of one peer (`peers/<name>.ts`), or the FaultProxy of part 4. It answers
 * the orchestrator's commands over the IPC channel (see `lib/ipc.ts`) and never exits on its own
 * except on `exit` (or when the orchestrator goes away).
 * @module
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { findSourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { FaultProxy } from '../../src/testing/fault-proxy.js';
import { MemorySampler, countMajorGcs, describeError, snapshot, wallNow } from './lib/common.js';
import type { ChildConfig, Command, Reply } from './lib/ipc.js';
import { ProbeRecorder } from './peers/types.js';
import type { PeerClient, PeerModule, PeerServer } from './peers/types.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;

/**
 * An application's heap: the process holds this many MiB of live objects (the system's
 * `appHeapMb`, else `BENCH_APP_HEAP_MB`, set by `--app-heap` of run.ts and cell.ts; default 0), as a
 * broker's or MQ client's process would. The size of the heap decides how V8 collects at high
 * allocation rates: in a bare process (an 8 MB heap) V8 starts incremental marking again as soon
 * as its young generation has grown to 16 MB, a major GC every 10–30 ms; in a larger heap each
 * major GC costs more but comes rarely (docs/IMPLEMENTATION.md, "Benchmark processes and V8").
 */
const APP_HEAP_MB = config.appHeapMb ?? Number(process.env.BENCH_APP_HEAP_MB ?? 0);
const appHeap: unknown[] = [];
// About 48 bytes per entry (the object and its slot in the array).
for (let i = 0; i < (APP_HEAP_MB * 2 ** 20) / 48; i++) appHeap.push({ id: i, next: undefined });
(globalThis as { benchAppHeap?: unknown }).benchAppHeap = appHeap;

type Handler = (args: Record<string, unknown>) => unknown;

function send(message: unknown): void {
  process.send?.(message);
}

/**
 * When profiling (`--cpu-prof`), write the source maps of the code the process runs into the
 * profile directory (`maps.json`): V8 records positions in the compiled JavaScript (or in tsx's
 * transpiled code), `profile.ts` maps them back to the TypeScript.
 */
function dumpSourceMaps(): void {
  const dirFlag = process.execArgv.find((a) => a.startsWith('--cpu-prof-dir='));
  if (dirFlag === undefined) return;
  const maps: Record<string, unknown> = {};
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.js')) {
        // tsc's map beside the compiled file; its sources made absolute for profile.ts.
        const payload = JSON.parse(readFileSync(`${full}.map`, 'utf8')) as { sources: string[] };
        const base = pathToFileURL(full);
        payload.sources = payload.sources.map((source) => new URL(source, base).href);
        maps[base.href] = payload;
      } else if (entry.name.endsWith('.ts')) {
        const map = findSourceMap(full) ?? findSourceMap(pathToFileURL(full).href);
        if (map !== undefined) maps[pathToFileURL(full).href] = map.payload;
      }
    }
  };
  walk(path.join(REPO, 'src'));
  walk(path.join(REPO, 'test', 'bench'));
  writeFileSync(path.join(dirFlag.slice('--cpu-prof-dir='.length), 'maps.json'), JSON.stringify(maps));
}

async function loadPeer(name: string): Promise<PeerModule> {
  const module = (await import(`./peers/${name}.js`)) as { peer: PeerModule };
  return module.peer;
}

async function main(): Promise<void> {
  if (process.env.BENCH_GC_COUNT === '1') countMajorGcs();
  const memory = new MemorySampler();
  const probe = new ProbeRecorder();
  const handlers = new Map<string, Handler>();
  handlers.set('snap', (args) => snapshot(args.gc === true));
  handlers.set('mem-start', (args) => memory.start((args.intervalMs as number | undefined) ?? 20));
  handlers.set('mem-stop', () => memory.stop());
  handlers.set('probe-report', () => probe.report());
  handlers.set('exit', () => {
    dumpSourceMaps();
    setImmediate(() => process.exit(0));
  });
  let port: number | undefined;

  if (config.role === 'proxy') {
    const proxy = new FaultProxy({
      target: { host: '127.0.0.1', port: config.options.targetPort as number },
    });
    port = (await proxy.listen()).port;
    handlers.set('blackhole', () => {
      proxy.blackhole();
      return wallNow();
    });
    handlers.set('info', () => ({ connections: proxy.connections, stats: proxy.stats }));
  } else {
    const peer = await loadPeer(config.peer);
    if (config.role === 'server') {
      const server: PeerServer = peer.createServer(config.options);
      port = await server.listen();
      handlers.set('snap', (args) => ({
        ...snapshot(args.gc === true),
        counters: { ...server.delivered, info: args.info === true ? server.info() : undefined },
      }));
      handlers.set('pause', () => server.pause());
      handlers.set('resume', () => server.resume());
      handlers.set('probe-start', () => server.startProbe?.(probe));
      handlers.set('info', () => server.info());
    } else {
      const client: PeerClient = peer.createClient(config.options);
      handlers.set('connect', (args) =>
        client.connect(args.port as number, (args.count as number) ?? 1, (args.parallel as number) ?? 100),
      );
      handlers.set('snap', (args) => ({ ...snapshot(args.gc === true), counters: { ...client.sent } }));
      handlers.set('pump', (args) => client.pump(args.size as number, args.fresh === true));
      handlers.set('stop-pump', () => client.stopPump());
      handlers.set('probe-start', (args) => client.startProbe?.((args.intervalMs as number) ?? 50, probe));
      handlers.set('probe-stop', () => client.stopProbe?.());
      handlers.set('info', () => client.info());
    }
  }

  process.on('message', (message: Command) => {
    const handler = handlers.get(message.cmd);
    const reply = (r: Omit<Reply, 'id'>): void => send({ id: message.id, ...r });
    if (handler === undefined) {
      reply({ ok: false, error: `unknown command ${message.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(message.args ?? {}))
      .then(
        (result) => reply({ ok: true, result }),
        (error: unknown) => reply({ ok: false, error: describeError(error) }),
      );
  });
  process.on('disconnect', () => process.exit(0));
  send({ ready: true, port });
}

main().catch((error: unknown) => {
  console.error(`bench child (${config.role} ${config.peer}) failed:`, error);
  process.exit(1);
});
