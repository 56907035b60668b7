import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import {
  codeOf,
  now,
  observe,
  Pump,
  Reader,
  rejection,
  report,
  sleep,
  useHarness,
  within,
} from './helpers.js';

/** Idle timeouts long enough that a heartbeat timeout cannot be what reports the death. */
const IDLE = 5000;
/** A killed peer's kernel answers at once (FIN or RST): the survivor must know within this. */
const BOUND = 2000;
const TRANSPORT_CODES = ['UNEXPECTED_EOF', 'TRANSPORT_ERROR'];

describe('node transport: peer process killed (SIGKILL)', function () {
  this.timeout(30_000);
  const h = useHarness();

  async function survivorSees(name: string, survivor: Connection, kill: () => void): Promise<void> {
    const closed = observe(survivor.closed);
    const t0 = now();
    kill();
    const outcome = await within(closed, BOUND + 5000, 'the survivor to notice');
    const ms = outcome.at - t0;
    const error = rejection(outcome, `${name}: survivor closed`);
    report(`peer killed, ${name}: survivor ${survivor.role} got ${codeOf(error)} after ${ms.toFixed(0)} ms`);
    expect(TRANSPORT_CODES).to.include(codeOf(error));
    expect(ms).to.be.below(BOUND);
  }

  async function childServer(): Promise<{ kill: () => void; client: Connection }> {
    const peer = h().peer('server', { idleTimeout: IDLE });
    const { port } = (await peer.next('listening', 15_000)) as unknown as { port: number };
    const client = await h().connect({ port, idleTimeout: IDLE });
    await peer.next('connection', 5000);
    return { kill: () => peer.kill('SIGKILL'), client };
  }

  it('server killed while the client is idle', async () => {
    const { kill, client } = await childServer();
    const reader = new Reader(client, undefined, { seq: false });
    await sleep(200);
    await survivorSees('server killed, client idle', client, kill);
    expect(TRANSPORT_CODES).to.include(codeOf(rejection(await reader.done, 'for await')));
  });

  it('server killed while the client sends as fast as it can', async () => {
    const { kill, client } = await childServer();
    const pump = new Pump(client, { size: 16 * 1024 });
    await sleep(300);
    expect(pump.resolved).to.be.greaterThan(0);
    await survivorSees('server killed, client sending', client, kill);
    await within(pump.done, 2000, 'every pending send() to settle');
    expect(pump.outstanding).to.equal(0);
  });

  it('client killed while the server sends to it', async () => {
    const { port, next } = await h().server({ idleTimeout: IDLE });
    const peer = h().peer('client', { port, idleTimeout: IDLE, send: true });
    const server = await next();
    await peer.next('open', 15_000);
    const pump = new Pump(server, { size: 16 * 1024 });
    const reader = new Reader(server, undefined, { seq: false });
    await sleep(300);
    expect(reader.bytes, 'the child sends').to.be.greaterThan(0);
    await survivorSees('client killed, server sending', server, () => peer.kill('SIGKILL'));
    await within(pump.done, 2000, 'every pending send() to settle');
    expect(pump.outstanding).to.equal(0);
  });
});
