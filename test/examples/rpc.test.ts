import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { RpcClient, RpcError, RpcServer } from '../../examples/rpc/rpc.js';
import type { RpcHandler } from '../../examples/rpc/rpc.js';

const HOST = '127.0.0.1';

/** What a server's `work` handler saw: why each call's signal aborted, and when. */
interface Observed {
  aborted: { reason: string; afterMs: number }[];
}

function methods(name: string, observed: Observed): Record<string, RpcHandler> {
  return {
    whoami: () => name,
    work: async (params, { signal }) => {
      const started = performance.now();
      signal.addEventListener('abort', () => {
        const reason = signal.reason instanceof RpcError ? signal.reason.code : String(signal.reason);
        observed.aborted.push({ reason, afterMs: performance.now() - started });
      });
      await sleep((params as { ms: number }).ms, undefined, { signal });
      return `${name}:${(params as { ms: number }).ms}`;
    },
  };
}

async function rejection(promise: Promise<unknown>): Promise<RpcError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the call should fail').to.be.instanceOf(RpcError);
  return error as RpcError;
}

describe('examples/rpc', function () {
  this.timeout(10_000);
  const observedA: Observed = { aborted: [] };
  const observedB: Observed = { aborted: [] };
  let a: RpcServer;
  let b: RpcServer;
  let client: RpcClient;
  let endpoints: { host: string; port: number }[];

  beforeEach(async () => {
    observedA.aborted = [];
    observedB.aborted = [];
    a = new RpcServer(methods('A', observedA));
    b = new RpcServer(methods('B', observedB));
    endpoints = [
      { host: HOST, port: (await a.listen(0, HOST)).port },
      { host: HOST, port: (await b.listen(0, HOST)).port },
    ];
    client = new RpcClient({ endpoints });
  });
  afterEach(async () => {
    await client.close();
    await Promise.all([a.close({ grace: 100 }), b.close({ grace: 100 })]);
  });

  it('answers calls, many at once on one connection', async () => {
    const results = await Promise.all([
      client.call('whoami'),
      client.call('work', { ms: 50 }),
      client.call('work', { ms: 10 }),
    ]);
    expect(results).to.deep.equal(['A', 'A:50', 'A:10']);
    expect((await rejection(client.call('nope'))).code).to.equal('NOT_FOUND');
  });

  it('fails a call at its deadline and stops the work on the server', async () => {
    const started = performance.now();
    const error = await rejection(client.call('work', { ms: 5000 }, { timeout: 150 }));
    const elapsed = performance.now() - started;
    expect(error.code).to.equal('DEADLINE_EXCEEDED');
    expect(elapsed).to.be.within(140, 1000);
    await sleep(100);
    // The server stopped too: by the propagated deadline or by the client's cancel.
    expect(observedA.aborted).to.have.length(1);
    expect(observedA.aborted[0]!.reason).to.be.oneOf(['DEADLINE_EXCEEDED', 'CANCELLED']);
    expect(observedA.aborted[0]!.afterMs).to.be.below(1000);
  });

  it('cancels a call with an AbortSignal and tells the server', async () => {
    const controller = new AbortController();
    const call = client.call('work', { ms: 5000 }, { signal: controller.signal, timeout: 5000 });
    await sleep(100);
    controller.abort();
    expect((await rejection(call)).code).to.equal('CANCELLED');
    await sleep(100);
    expect(observedA.aborted.map((a) => a.reason)).to.deep.equal(['CANCELLED']);
    expect(await client.call('whoami')).to.equal('A'); // the connection is fine
  });

  it('on GOAWAY, moves new calls to another server and lets the calls in flight finish', async () => {
    const disconnected: [string, Error | undefined][] = [];
    client.on('disconnected', (endpoint, error) => disconnected.push([endpoint, error]));
    expect(await client.call('whoami')).to.equal('A');
    const inFlight = [200, 400, 600].map((ms) => client.call('work', { ms }));
    await sleep(50);
    const started = performance.now();
    const closing = a.close({ grace: 5000 });
    await sleep(20);
    expect(await client.call('whoami')).to.equal('B');
    expect(await Promise.all(inFlight)).to.deep.equal(['A:200', 'A:400', 'A:600']);
    await closing;
    // A closed as soon as its calls were done, long before the grace, cleanly.
    expect(performance.now() - started).to.be.below(2000);
    for (let i = 0; i < 100 && disconnected.length === 0; i++) await sleep(10); // the client closes last
    expect(disconnected).to.deep.equal([[`${HOST}:${endpoints[0]!.port}`, undefined]]);
    expect(observedA.aborted).to.deep.equal([]);
  });
});
