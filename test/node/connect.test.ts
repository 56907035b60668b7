import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { expect } from 'chai';
import { connect } from '../../src/node/connect.js';
import { ConnectError } from '../../src/protocol/errors.js';
import { codeOf, LOCALHOST, now, observe, rejection, report, sleep, useHarness, within } from './helpers.js';

const CONNECT_TIMEOUT = 1000;
const STAGGER = 250;
/** Allowed lateness of a timeout on a loaded machine. */
const MARGIN = 1500;

/**
 * A loopback listener whose accept queue is full: `listen(0)` in a process that never accepts,
 * plus connections that fill the queue. Linux then drops further SYNs silently, so a connect
 * to it hangs like a connect into a black hole.
 */
const FULL_LISTENER = `
import socket, sys
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen(0)
print(s.getsockname()[1], flush=True)
sys.stdin.read()
`;

function python(): string | undefined {
  for (const candidate of ['python3', 'python']) {
    const r = spawnSync(candidate, ['-c', 'print(1)'], { encoding: 'utf8', timeout: 10_000 });
    if (r.status === 0) return candidate;
  }
  return undefined;
}

/** A closed loopback port: nothing listens there, so a connect is refused at once. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, LOCALHOST, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('node transport: connect', function () {
  this.timeout(30_000);
  let listener: ChildProcess | undefined;
  let fillers: net.Socket[] = [];
  /** Port of the blackholed loopback endpoint, when this machine can make one. */
  let blackholePort: number | undefined;
  let skipReason = '';

  before(async function () {
    this.timeout(20_000);
    const py = python();
    if (py === undefined) {
      skipReason = 'python3 not found (needed for a listener whose accept queue is full)';
      return;
    }
    listener = spawn(py, ['-c', FULL_LISTENER], { stdio: ['pipe', 'pipe', 'inherit'] });
    const port = await within(
      new Promise<number>((resolve, reject) => {
        listener!.stdout!.once('data', (data: Buffer) => resolve(Number(String(data).trim())));
        listener!.once('error', reject);
      }),
      10_000,
      'the python listener',
    );
    // Fill the accept queue (backlog 0 holds one connection; the second only makes sure).
    for (let i = 0; i < 2; i++) {
      const s = net.connect({ host: LOCALHOST, port });
      s.on('error', () => {});
      fillers.push(s);
      await sleep(100);
    }
    // Verify that a further connect really hangs before relying on it.
    const probe = net.connect({ host: LOCALHOST, port });
    probe.on('error', () => {});
    let connected = false;
    probe.once('connect', () => (connected = true));
    await sleep(700);
    probe.destroy();
    if (connected) skipReason = 'a full accept queue does not drop SYNs on this kernel';
    else blackholePort = port;
  });

  after(() => {
    for (const s of fillers) s.destroy();
    fillers = [];
    listener?.stdin?.end();
    listener?.kill('SIGKILL');
  });

  const h = useHarness();

  function needBlackhole(ctx: Mocha.Context): number {
    if (blackholePort === undefined) {
      console.log(`      (skipped: ${skipReason})`);
      ctx.skip();
    }
    return blackholePort!;
  }

  it('to a blackholed endpoint: CONNECT_TIMEOUT at connectTimeout, the address in attempts', async function () {
    const port = needBlackhole(this);
    const t0 = now();
    const outcome = await observe(connect({ host: LOCALHOST, port, connectTimeout: CONNECT_TIMEOUT }));
    const ms = outcome.at - t0;
    const error = rejection(outcome, 'connect()');
    report(
      `connect to a blackholed endpoint: ${codeOf(error)} after ${ms.toFixed(0)} ms (connectTimeout ${CONNECT_TIMEOUT})`,
    );
    expect(error).to.be.instanceOf(ConnectError);
    expect(codeOf(error)).to.equal('CONNECT_TIMEOUT');
    const attempts = (error as ConnectError).attempts;
    expect(attempts.map((a) => `${a.host}:${a.port}`)).to.deep.equal([`${LOCALHOST}:${port}`]);
    expect(codeOf(attempts[0]!.error)).to.equal('CONNECT_TIMEOUT');
    expect(ms).to.be.within(CONNECT_TIMEOUT - 50, CONNECT_TIMEOUT + MARGIN);
  });

  it('first endpoint blackholed, second alive: connected to the second within stagger + margin', async function () {
    const dead = needBlackhole(this);
    const { port } = await h().server();
    const t0 = now();
    const client = await h().connect({
      endpoints: [
        { host: LOCALHOST, port: dead },
        { host: LOCALHOST, port },
      ],
      attemptStagger: STAGGER,
      connectTimeout: CONNECT_TIMEOUT * 5,
    });
    const ms = now() - t0;
    report(
      `endpoints [blackholed, alive]: connected to the second after ${ms.toFixed(0)} ms (stagger ${STAGGER})`,
    );
    expect(client.stats().remotePort).to.equal(port);
    expect(client.state).to.equal('open');
    expect(ms).to.be.within(STAGGER - 20, STAGGER + MARGIN);
  });

  it('every endpoint failing: ConnectError lists every address with its own error', async function () {
    const dead = needBlackhole(this);
    const refused = await closedPort();
    const endpoints = [
      { host: LOCALHOST, port: dead },
      { host: LOCALHOST, port: refused },
    ];
    const t0 = now();
    const outcome = await observe(
      connect({ endpoints, attemptStagger: STAGGER, connectTimeout: CONNECT_TIMEOUT }),
    );
    const ms = outcome.at - t0;
    const error = rejection(outcome, 'connect()') as ConnectError;
    report(
      `endpoints [blackholed, refused]: ${codeOf(error)} after ${ms.toFixed(0)} ms; attempts ` +
        error.attempts.map((a) => `${a.port}=${codeOf(a.error)}`).join(', '),
    );
    expect(error).to.be.instanceOf(ConnectError);
    expect(codeOf(error)).to.equal('CONNECT_FAILED');
    expect(error.attempts.map((a) => ({ host: a.host, port: a.port }))).to.deep.equal(endpoints);
    expect(codeOf(error.attempts[0]!.error)).to.equal('CONNECT_TIMEOUT');
    expect(codeOf(error.attempts[1]!.error)).to.equal('ECONNREFUSED');
    expect(ms).to.be.within(CONNECT_TIMEOUT - 50, CONNECT_TIMEOUT + MARGIN);
  });

  it('every endpoint blackholed: CONNECT_TIMEOUT with every address in attempts', async function () {
    const dead = needBlackhole(this);
    const endpoints = [
      { host: LOCALHOST, port: dead },
      { host: LOCALHOST, port: dead },
    ];
    const t0 = now();
    const outcome = await observe(
      connect({ endpoints, attemptStagger: STAGGER, connectTimeout: CONNECT_TIMEOUT }),
    );
    const ms = outcome.at - t0;
    const error = rejection(outcome, 'connect()') as ConnectError;
    report(`endpoints [blackholed, blackholed]: ${codeOf(error)} after ${ms.toFixed(0)} ms`);
    expect(codeOf(error)).to.equal('CONNECT_TIMEOUT');
    expect(error.attempts.map((a) => `${a.host}:${a.port}`)).to.deep.equal(
      endpoints.map((e) => `${e.host}:${e.port}`),
    );
    expect(error.attempts.map((a) => codeOf(a.error))).to.deep.equal(['CONNECT_TIMEOUT', 'CONNECT_TIMEOUT']);
    // The second attempt starts one stagger after the first and has its own full timeout.
    expect(ms).to.be.within(STAGGER + CONNECT_TIMEOUT - 50, STAGGER + CONNECT_TIMEOUT + MARGIN);
  });

  it('an abort signal cancels a hanging connect with CANCELLED', async function () {
    const dead = needBlackhole(this);
    const t0 = now();
    const outcome = await observe(
      connect({ host: LOCALHOST, port: dead, connectTimeout: 10_000, signal: AbortSignal.timeout(300) }),
    );
    const error = rejection(outcome, 'connect()');
    expect(codeOf(error)).to.equal('CANCELLED');
    expect(outcome.at - t0).to.be.within(250, 300 + MARGIN);
  });

  it('a FaultProxy that accepts TCP but stays silent: HANDSHAKE_TIMEOUT within handshakeTimeout', async () => {
    const HANDSHAKE = 1000;
    const { port: serverPort } = await h().server();
    const { proxy, port } = await h().proxy(serverPort);
    proxy.blackhole();
    const t0 = now();
    const outcome = await observe(connect({ host: LOCALHOST, port, handshakeTimeout: HANDSHAKE }));
    const ms = outcome.at - t0;
    const error = rejection(outcome, 'connect()') as ConnectError;
    report(
      `connect through a silent proxy: ${codeOf(error)} (attempt: ${codeOf(error.attempts?.[0]?.error)}) ` +
        `after ${ms.toFixed(0)} ms (handshakeTimeout ${HANDSHAKE})`,
    );
    expect(error).to.be.instanceOf(ConnectError);
    expect(codeOf(error.attempts[0]!.error)).to.equal('HANDSHAKE_TIMEOUT');
    expect(['CONNECT_TIMEOUT', 'HANDSHAKE_TIMEOUT']).to.include(codeOf(error));
    expect(ms).to.be.within(HANDSHAKE - 50, HANDSHAKE + MARGIN);
  });

  it('a server at maxConnections refuses with ERROR REFUSED; the client reports it as the attempt error', async () => {
    const { port } = await h().server({ maxConnections: 1 });
    const first = await h().connect({ port });
    const outcome = await observe(connect({ host: LOCALHOST, port, handshakeTimeout: 5000 }));
    const error = rejection(outcome, 'connect()') as ConnectError;
    expect(codeOf(error)).to.equal('CONNECT_FAILED');
    const cause = error.attempts[0]!.error as Error & { code?: string; remote?: boolean };
    expect(codeOf(cause)).to.equal('REFUSED');
    expect(cause.remote).to.equal(true);
    expect(first.state).to.equal('open');
  });
});
