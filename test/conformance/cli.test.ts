/**
 * `heartwire conformance server HOST:PORT` as a command, against `heartwire serve` in another
 * process: exit 0, JSON and JUnit reports; exit 1 against a server that is not heartwire.
 */
import { expect } from 'chai';
import { report as figure } from '../figures.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunResult } from '../../src/conformance/types.js';
import { startCli } from '../helpers/child.js';
import type { OutputChild } from '../helpers/child.js';

describe('heartwire conformance (command)', function () {
  this.timeout(120_000);
  const children: OutputChild[] = [];
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'heartwire-conformance-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => {
    for (const c of children.splice(0)) if (c.child.exitCode === null) c.child.kill('SIGKILL');
  });

  it('passes every case against heartwire serve, exit 0, with --json and --junit', async () => {
    const serve = startCli(['serve', '--port', '0', '--idle-timeout', '1000', '--handshake-timeout', '1000']);
    children.push(serve);
    const [, port] = await serve.waitFor(/listening on 127\.0\.0\.1:(\d+)/, 30_000);
    const junit = join(dir, 'report.xml');
    const run = startCli([
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
      '--handshake-timeout',
      '1000',
    ]);
    children.push(run);
    const code = await run.closed;
    const report = JSON.parse(run.stdout) as RunResult;
    const failed = report.results.filter((r) => r.status === 'fail');
    expect(failed, JSON.stringify(failed, null, 2)).to.deep.equal([]);
    expect(code, run.stderr).to.equal(0);
    // INFO: the GOAWAY cases (no --goaway-within). The handshake timeout, 1 s on both sides, passes.
    expect(report.results.filter((r) => r.status === 'info').map((r) => r.id)).to.have.members([
      '9.2/goaway-then-close',
      '9.2/goaway-grace-expired',
    ]);
    expect(report.results.find((r) => r.id === '6/handshake-timeout')?.status).to.equal('pass');
    const xml = readFileSync(junit, 'utf8');
    expect(xml).to.contain(`tests="${report.results.length}" failures="0" skipped="2"`);
    figure(
      `against heartwire serve: ${report.counts.pass} pass, ${report.counts.info} info in ${(report.durationMs / 1000).toFixed(1)} s`,
    );
  });

  it('exits 1 naming the SPEC section against a TCP server that is not heartwire', async () => {
    const silent = net.createServer((socket) => socket.on('error', () => {}));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const run = startCli([
        'conformance',
        'server',
        `127.0.0.1:${port}`,
        '--only',
        '3/preamble-and-welcome',
        '--timeout',
        '500',
      ]);
      children.push(run);
      expect(await run.closed).to.equal(1);
      expect(run.stdout).to.match(/FAIL {2}§3 +3\/preamble-and-welcome/);
      expect(run.stdout).to.contain('failing sections: §3');
    } finally {
      silent.close();
    }
  });

  it('exits 2 on bad usage; --list lists the cases by section', async () => {
    const bad = startCli(['conformance', 'frobnicate']);
    children.push(bad);
    expect(await bad.closed).to.equal(2);
    const list = startCli(['conformance', '--list', '--only', '§7']);
    children.push(list);
    expect(await list.closed).to.equal(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines.length).to.be.greaterThan(3);
    for (const line of lines) expect(line).to.match(/^§7 +7\//);
  });
});
