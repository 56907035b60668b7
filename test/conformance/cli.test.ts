/**
 * `heartwire conformance server HOST:PORT` as a command, against `heartwire serve` in another
 * process: exit 0, JSON and JUnit reports; exit 1 against a server that is not heartwire.
 */
import { expect } from 'chai';
import { report as figure } from '../figures.js';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '../../src/conformance/types.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Child {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
}

function start(args: string[]): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const c: Child = {
    child,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (c.stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (c.stderr += chunk));
  return c;
}

async function waitFor(c: Child, pattern: RegExp, ms: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const match = pattern.exec(c.stdout);
    if (match !== null) return match;
    if (Date.now() > deadline || c.child.exitCode !== null)
      throw new Error(`no ${pattern} in:\n${c.stdout}\n${c.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('heartwire conformance (command)', function () {
  this.timeout(120_000);
  const children: Child[] = [];
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'heartwire-conformance-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => {
    for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  });

  it('passes every case against heartwire serve, exit 0, with --json and --junit', async () => {
    const serve = start(['serve', '--port', '0', '--idle-timeout', '1000']);
    children.push(serve);
    const [, port] = await waitFor(serve, /listening on 127\.0\.0\.1:(\d+)/, 30_000);
    const junit = join(dir, 'report.xml');
    const run = start([
      'conformance',
      'server',
      `127.0.0.1:${port}`,
      '--json',
      '--junit',
      junit,
      '--max-wait',
      '5000',
      '--tolerance',
      '250',
    ]);
    children.push(run);
    const code = await run.exited;
    const report = JSON.parse(run.stdout) as RunResult;
    const failed = report.results.filter((r) => r.status === 'fail');
    expect(failed, JSON.stringify(failed, null, 2)).to.deep.equal([]);
    expect(code, run.stderr).to.equal(0);
    // INFO: the GOAWAY cases (no --goaway-within) and the handshake timeout (10 s > --max-wait).
    expect(report.results.filter((r) => r.status === 'info').map((r) => r.id)).to.have.members([
      '6/handshake-timeout',
      '9.2/goaway-then-close',
      '9.2/goaway-grace-expired',
    ]);
    const xml = readFileSync(junit, 'utf8');
    expect(xml).to.contain(`tests="${report.results.length}" failures="0" skipped="3"`);
    figure(
      `against heartwire serve: ${report.counts.pass} pass, ${report.counts.info} info in ${(report.durationMs / 1000).toFixed(1)} s`,
    );
  });

  it('exits 1 naming the SPEC section against a TCP server that is not heartwire', async () => {
    const silent = net.createServer((socket) => socket.on('error', () => {}));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const run = start([
        'conformance',
        'server',
        `127.0.0.1:${port}`,
        '--only',
        '3/preamble-and-welcome',
        '--timeout',
        '500',
      ]);
      children.push(run);
      expect(await run.exited).to.equal(1);
      expect(run.stdout).to.match(/FAIL {2}§3 +3\/preamble-and-welcome/);
      expect(run.stdout).to.contain('failing sections: §3');
    } finally {
      silent.close();
    }
  });

  it('exits 2 on bad usage; --list lists the cases by section', async () => {
    const bad = start(['conformance', 'frobnicate']);
    children.push(bad);
    expect(await bad.exited).to.equal(2);
    const list = start(['conformance', '--list', '--only', '§7']);
    children.push(list);
    expect(await list.exited).to.equal(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines.length).to.be.greaterThan(3);
    for (const line of lines) expect(line).to.match(/^§7 +7\//);
  });
});
