/**
 * The README's code samples, run as written: every ```ts block of README.md is written to a
 * temporary module (its `heartwire` imports pointed at this checkout's sources) and run with tsx
 * in a child process; its output is checked. Then the README's echo server, extracted from the
 * sample and run in its own process, is attacked by misbehaving clients (abort mid-stream,
 * SIGKILL'd client process, a reply over the client's maxMessageSize, protocol garbage before and
 * after the handshake): the process must live on and keep serving a healthy client.
 *
 * A block whose info string contains `no-run` (```ts no-run) is not run.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Connection } from '../src/node/connection.js';
import { pointImportsAtCheckout, runModule } from './helpers/run-module.js';
import {
  LOCALHOST,
  REPO_ROOT,
  codeOf,
  helloBytes,
  observe,
  pseudoRandomBytes,
  report,
  sleep,
  useHarness,
  waitFor,
  within,
} from './node/helpers.js';

const README = path.join(REPO_ROOT, 'README.md');

interface Block {
  info: string;
  code: string;
  line: number;
}

/** The ```ts blocks of the README. */
export function readmeBlocks(text = readFileSync(README, 'utf8')): Block[] {
  const blocks: Block[] = [];
  const fence = /^```ts([^\n]*)\n([\s\S]*?)^```/gm;
  for (let match = fence.exec(text); match !== null; match = fence.exec(text)) {
    blocks.push({
      info: match[1]!.trim(),
      code: match[2]!,
      line: text.slice(0, match.index).split('\n').length,
    });
  }
  return blocks;
}

let tmp: string | undefined;
function tempModule(name: string, code: string): string {
  tmp ??= mkdtempSync(path.join(os.tmpdir(), 'heartwire-readme-'));
  const file = path.join(tmp, name);
  writeFileSync(file, code);
  return file;
}

/** The README's echo server: the `const server = createServer(…);` statement of the sample. */
function echoServerCode(): string {
  const block = readmeBlocks().find((b) => /An echo server/.test(b.code));
  if (block === undefined) throw new Error('README: no block with "An echo server"');
  const statement = /^const server = createServer\([\s\S]*?^\}\);$/m.exec(block.code);
  if (statement === null) throw new Error('README: the echo server statement was not found');
  const imports = block.code.split('\n').filter((l) => l.startsWith('import '));
  return pointImportsAtCheckout(
    [
      ...imports,
      statement[0],
      "const { port } = await server.listen(0, '127.0.0.1');",
      'process.send!({ type: "listening", port });',
      "process.on('disconnect', () => process.exit(0));",
      '',
    ].join('\n'),
  );
}

after(() => {
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
});

describe('README: the code samples run as written', function () {
  this.timeout(120_000);

  it('every ```ts block runs to completion (exit 0) and prints what the README says', async () => {
    const blocks = readmeBlocks().filter((b) => !/\bno-run\b/.test(b.info));
    expect(blocks.length, 'runnable ts blocks in README.md').to.be.greaterThan(0);
    for (const [index, block] of blocks.entries()) {
      const result = await runModule(block.code, { timeout: 60_000, name: `block-${index}.mts` });
      const where = `README.md block at line ${block.line}`;
      expect(result.code, `${where} exit code; stderr:\n${result.stderr}`).to.equal(0);
      if (/new Simulation\(/.test(block.code)) {
        expect(result.stdout, `${where} output`).to.contain('50 simulated runs passed');
      }
      if (/An echo server/.test(block.code)) {
        const lines = result.stdout.split('\n');
        expect(lines, `${where} output`).to.include('hello');
        const summary = lines.find((l) => l.startsWith('true {'));
        expect(summary, `${where}: the close summary line in\n${result.stdout}`).to.not.equal(undefined);
        expect(result.stdout).to.match(/queued: 1,/);
        expect(result.stdout).to.match(/consumed: 1,/);
      }
    }
  });
});

describe("README: the echo server's process survives every client behaviour", function () {
  this.timeout(180_000);
  const h = useHarness();

  it('abort mid-stream, SIGKILLed client, reply over maxMessageSize, garbage: the server lives on and serves', async () => {
    const file = tempModule('echo-server.mts', echoServerCode());
    const server: ChildProcess = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let stderr = '';
    server.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    server.stdout!.resume();
    let exited: string | undefined;
    server.on('exit', (code, signal) => (exited = `exit code ${code}, signal ${signal}`));
    h().defer(async () => {
      if (exited === undefined) {
        server.kill('SIGKILL');
        await waitFor(() => exited !== undefined, 5000, 'the echo server to exit');
      }
    });
    const port = await within(
      new Promise<number>((resolve) =>
        server.on('message', (m: { type: string; port: number }) => {
          if (m.type === 'listening') resolve(m.port);
        }),
      ),
      30_000,
      'the echo server to listen',
    );
    const alive = (what: string): void => {
      expect(exited, `the README echo server died after ${what}; stderr:\n${stderr}`).to.equal(undefined);
    };

    // A healthy client that stays connected throughout.
    const healthy = await h().connect({ port, idleTimeout: 10_000 });
    let roundTrips = 0;
    const roundTrip = async (what: string): Promise<void> => {
      alive(what);
      const text = `ping ${roundTrips}`;
      await within(healthy.send(new TextEncoder().encode(text)), 10_000, `a send after ${what}`);
      const reply = await within(
        (async () => {
          for await (const message of healthy) return new TextDecoder().decode(message);
          return undefined;
        })(),
        10_000,
        `the echo after ${what}`,
      );
      expect(reply, `the echo after ${what}`).to.equal(text);
      roundTrips++;
    };
    await roundTrip('nothing');
    const counts: Record<string, number> = {};
    const count = (kind: string): void => {
      counts[kind] = (counts[kind] ?? 0) + 1;
    };

    // 1. abort() mid-stream: messages in flight both ways.
    for (let i = 0; i < 20; i++) {
      const conn = await h().connect({ port, idleTimeout: 10_000 });
      for (let m = 0; m < 50; m++) conn.write(pseudoRandomBytes(1024, m));
      if (i % 2 === 1) await sleep(5); // some echoes under way
      conn.abort();
      count('abort');
    }
    await sleep(200);
    await roundTrip('clients that abort()');

    // 2. A client process killed with SIGKILL while sending.
    for (let i = 0; i < 3; i++) {
      const peer = h().peer('client', { port, send: true, idleTimeout: 10_000 });
      await peer.next('open', 30_000);
      await sleep(100);
      peer.kill('SIGKILL');
      await within(peer.exited, 10_000, 'the killed client to exit');
      count('SIGKILL');
    }
    await sleep(200);
    await roundTrip("SIGKILL'd client processes");

    // 3. The echo of a message larger than the client accepts: the handler's send() rejects.
    for (let i = 0; i < 10; i++) {
      const conn = await h().connect({ port, idleTimeout: 10_000, maxMessageSize: 1024 });
      await conn.send(pseudoRandomBytes(4096, i));
      const closed = await within(observe(conn.closed), 10_000, 'the oversize client to be closed');
      expect(closed.ok).to.equal(false);
      if (!closed.ok) {
        expect(codeOf(closed.error), 'the client sees the handler failure').to.equal('INTERNAL_ERROR');
        expect(String((closed.error as Error).message)).to.not.match(/MESSAGE_TOO_LARGE|exceeds/);
      }
      count('reply over maxMessageSize');
    }
    await roundTrip('replies over the client maxMessageSize');

    // 4. Garbage: before the handshake, and after a valid handshake.
    for (let i = 0; i < 10; i++) {
      const raw = h().raw(port);
      await raw.connected;
      const before = pseudoRandomBytes(2048, 100 + i);
      before[0] = 0x00; // not the preamble's first byte
      raw.write(before);
      count('garbage before the handshake');
      const framed = h().raw(port);
      await framed.connected;
      framed.write(helloBytes({ idleTimeoutMs: 10_000 }));
      await sleep(20);
      const after = pseudoRandomBytes(2048, 200 + i);
      after.fill(0xff, 0, 6); // a frame header announcing a 4 GiB payload
      framed.write(after);
      count('garbage after the handshake');
    }
    await waitFor(() => h().raws.every((r) => r.ended), 15_000, 'the server to end every garbage peer');
    await roundTrip('garbage');

    // A fresh client still gets served.
    const fresh: Connection = await h().connect({ host: LOCALHOST, port, idleTimeout: 10_000 });
    await fresh.send(new TextEncoder().encode('fresh'));
    for await (const message of fresh) {
      expect(new TextDecoder().decode(message)).to.equal('fresh');
      break;
    }
    await within(fresh.end(), 10_000, 'the fresh client to end');
    await within(healthy.end(), 10_000, 'the healthy client to end');
    alive('everything');
    expect(stderr, 'stderr of the echo server').to.not.match(/Unhandled|uncaught/i);
    report(
      `README echo server survived ${Object.entries(counts)
        .map(([k, n]) => `${n} × ${k}`)
        .join(', ')}; healthy client ${roundTrips} round trips between the batches`,
    );
  });
});
