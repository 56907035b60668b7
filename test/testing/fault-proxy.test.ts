import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { FaultProxy, type FaultDirection, type FaultProxyOptions } from '../../src/testing/fault-proxy.js';

/** How long a test watches for data that must not arrive. */
const SILENCE_MS = 300;
/** Upper bound for anything that should happen "soon" (generous: loaded 2-core machines). */
const SOON_MS = 5000;

const HOST = '127.0.0.1';

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until it holds; rejects after `timeoutMs`. Leaves no timer behind. */
async function waitUntil(condition: () => boolean, what: string, timeoutMs = SOON_MS): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(5);
  }
}

/** Everything a socket reported, recorded from the moment it is watched. */
interface Watched {
  readonly socket: net.Socket;
  readonly chunks: Buffer[];
  received(): Buffer;
  receivedBytes: number;
  ended: boolean;
  closed: boolean;
  hadError: boolean | undefined;
  error: (Error & { code?: string }) | undefined;
  /** Resolves when at least `n` bytes were received in total. */
  waitForBytes(n: number, timeoutMs?: number): Promise<void>;
}

function watch(socket: net.Socket): Watched {
  const w: Watched = {
    socket,
    chunks: [],
    received: () => Buffer.concat(w.chunks),
    receivedBytes: 0,
    ended: false,
    closed: false,
    hadError: undefined,
    error: undefined,
    waitForBytes: (n, timeoutMs) => waitUntil(() => w.receivedBytes >= n, `${n} bytes`, timeoutMs),
  };
  socket.on('data', (chunk: Buffer) => {
    w.chunks.push(chunk);
    w.receivedBytes += chunk.length;
  });
  socket.on('end', () => (w.ended = true));
  socket.on('error', (err) => (w.error = err));
  socket.on('close', (hadError) => {
    w.closed = true;
    w.hadError = hadError;
  });
  return w;
}

/** Writes and resolves when the kernel took the data (the write callback ran without error). */
function write(socket: net.Socket, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (err) => (err ? reject(err) : resolve())));
}

interface Harness {
  proxy: FaultProxy;
  /** Sockets accepted by the target server, watched from accept on. */
  accepted: Watched[];
  /** Connects a client through the proxy and waits until the server accepted it. */
  connectPair(): Promise<{ client: Watched; server: Watched }>;
  /** Connects a client through the proxy; waits for 'connect' only. */
  connectClient(): Promise<Watched>;
}

/** Every socket and server a test opened, destroyed and awaited after each test. */
let sockets: net.Socket[] = [];
let servers: net.Server[] = [];
let proxies: FaultProxy[] = [];

function closeOf(socket: net.Socket): Promise<void> {
  return socket.closed ? Promise.resolve() : new Promise((resolve) => socket.once('close', () => resolve()));
}

async function cleanUp(): Promise<void> {
  await Promise.all(proxies.map((p) => p.close()));
  for (const s of sockets) s.destroy();
  await Promise.all(sockets.map(closeOf));
  await Promise.all(
    servers.map((s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve()))),
  );
  sockets = [];
  servers = [];
  proxies = [];
}

async function startServer(echo: boolean, accepted: Watched[]): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    accepted.push(watch(socket));
    if (echo) socket.pipe(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return server;
}

async function setup(
  options: { echo?: boolean } & Partial<Omit<FaultProxyOptions, 'target'>> = {},
): Promise<Harness> {
  const accepted: Watched[] = [];
  const server = await startServer(options.echo ?? false, accepted);
  const { port: targetPort } = server.address() as net.AddressInfo;
  const proxy = new FaultProxy({ ...options, target: { host: HOST, port: targetPort } });
  proxies.push(proxy);
  const { host, port } = await proxy.listen();
  expect(host).to.equal(HOST);
  expect(port).to.be.above(0);
  const connectClient = async (): Promise<Watched> => {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    sockets.push(socket);
    const w = watch(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return w;
  };
  const connectPair = async (): Promise<{ client: Watched; server: Watched }> => {
    const before = accepted.length;
    const client = await connectClient();
    await waitUntil(() => accepted.length > before, 'the server to accept');
    return { client, server: accepted[before] };
  };
  return { proxy, accepted, connectPair, connectClient };
}

/** Proves the path works: a message each way arrives intact. */
async function roundTrip(client: Watched, server: Watched, tag: string): Promise<void> {
  const toServer = Buffer.from(`c2s:${tag}`);
  const toClient = Buffer.from(`s2c:${tag}`);
  const c0 = client.receivedBytes;
  const s0 = server.receivedBytes;
  await write(client.socket, toServer);
  await write(server.socket, toClient);
  await server.waitForBytes(s0 + toServer.length);
  await client.waitForBytes(c0 + toClient.length);
  expect(server.received().subarray(s0).toString()).to.equal(toServer.toString());
  expect(client.received().subarray(c0).toString()).to.equal(toClient.toString());
}

const RESOURCE_KINDS = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout', 'Immediate'];

function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(RESOURCE_KINDS.map((k) => [k, 0]));
  for (const r of process.getActiveResourcesInfo()) if (r in counts) counts[r] += 1;
  return counts;
}

describe('FaultProxy (real sockets on 127.0.0.1)', function () {
  this.timeout(15_000);
  afterEach(cleanUp);

  it('forwards bytes both ways, byte-exact, and counts them', async () => {
    const { proxy, connectPair } = await setup({ echo: true });
    const { client } = await connectPair();
    const data = randomBytes(1024 * 1024);
    client.socket.write(data);
    await client.waitForBytes(data.length);
    expect(client.received().equals(data)).to.equal(true);
    expect(proxy.connections).to.equal(1);
    const stats = proxy.stats;
    expect(stats.acceptedConnections).to.equal(1);
    expect(stats.clientToServer.forwardedBytes).to.equal(data.length);
    expect(stats.serverToClient.forwardedBytes).to.equal(data.length);
    expect(stats.clientToServer.discardedBytes).to.equal(0);
    expect(stats.clientToServer.queuedBytes).to.equal(0);
  });

  it('blackhole(): both sides write without error, nothing arrives, heal() lets only new data flow', async () => {
    const { proxy, connectPair } = await setup();
    const { client, server } = await connectPair();
    await roundTrip(client, server, 'before');
    const c0 = client.receivedBytes;
    const s0 = server.receivedBytes;

    proxy.blackhole();
    expect(proxy.isBlackholed('client-to-server')).to.equal(true);
    expect(proxy.isBlackholed('server-to-client')).to.equal(true);
    // Far more than any socket buffer would hold if the proxy stopped reading: the writes
    // complete only because the proxy keeps reading (and discarding).
    const lostToServer = randomBytes(8 * 1024 * 1024);
    const lostToClient = randomBytes(64 * 1024);
    await Promise.all([write(client.socket, lostToServer), write(server.socket, lostToClient)]);
    await waitUntil(
      () =>
        proxy.stats.clientToServer.discardedBytes === lostToServer.length &&
        proxy.stats.serverToClient.discardedBytes === lostToClient.length,
      'the proxy to read and discard everything',
    );
    await delay(SILENCE_MS);
    expect(server.receivedBytes).to.equal(s0);
    expect(client.receivedBytes).to.equal(c0);
    for (const w of [client, server]) {
      expect(w.error, 'no error').to.equal(undefined);
      expect(w.closed, 'still open').to.equal(false);
    }

    proxy.heal();
    expect(proxy.isBlackholed('client-to-server')).to.equal(false);
    await roundTrip(client, server, 'after');
    // Only the new data arrived: what was sent during the black hole is lost.
    expect(server.received().subarray(s0).toString()).to.equal('c2s:after');
    expect(client.received().subarray(c0).toString()).to.equal('s2c:after');
  });

  for (const direction of ['client-to-server', 'server-to-client'] as const) {
    it(`blackhole('${direction}') drops that direction only`, async () => {
      const { proxy, connectPair } = await setup();
      const { client, server } = await connectPair();
      await roundTrip(client, server, 'before');
      const [sender, receiver, other, otherReceiver] =
        direction === 'client-to-server'
          ? [client, server, server, client]
          : [server, client, client, server];
      const r0 = receiver.receivedBytes;
      const o0 = otherReceiver.receivedBytes;

      proxy.blackhole(direction);
      const other2 = (d: FaultDirection): FaultDirection =>
        d === 'client-to-server' ? 'server-to-client' : 'client-to-server';
      expect(proxy.isBlackholed(other2(direction))).to.equal(false);
      await write(sender.socket, 'lost');
      await write(other.socket, 'delivered');
      await otherReceiver.waitForBytes(o0 + 'delivered'.length);
      await delay(SILENCE_MS);
      expect(receiver.receivedBytes).to.equal(r0);
      expect(otherReceiver.received().subarray(o0).toString()).to.equal('delivered');

      proxy.heal(direction);
      await write(sender.socket, 'fresh');
      await receiver.waitForBytes(r0 + 'fresh'.length);
      expect(receiver.received().subarray(r0).toString()).to.equal('fresh');
    });
  }

  it('holds connections accepted during a blackhole: open and silent, never connected, even after heal()', async () => {
    const { proxy, accepted, connectClient, connectPair } = await setup();
    proxy.blackhole();
    const held = await connectClient(); // the client sees its connection established
    await write(held.socket, 'into the void');
    await delay(SILENCE_MS);
    expect(accepted).to.have.length(0);
    expect(held.closed).to.equal(false);
    expect(proxy.connections).to.equal(1);
    expect(proxy.stats.heldConnections).to.equal(1);

    proxy.heal();
    const { client, server } = await connectPair();
    await roundTrip(client, server, 'fresh');
    await write(held.socket, 'still nowhere');
    await waitUntil(
      () => proxy.stats.clientToServer.discardedBytes === 'into the void'.length + 'still nowhere'.length,
      'the held bytes to be discarded',
    );
    expect(accepted).to.have.length(1);
    expect(held.closed).to.equal(false);
    expect(proxy.connections).to.equal(2);
  });

  it('forwards half-close both ways', async () => {
    const { proxy, connectPair } = await setup();
    const { client, server } = await connectPair();
    client.socket.end('last words');
    await waitUntil(() => server.ended, "the server's 'end'");
    expect(server.received().toString()).to.equal('last words');
    // The other direction still works after the half-close.
    await write(server.socket, 'reply');
    await client.waitForBytes('reply'.length);
    expect(client.ended).to.equal(false);
    server.socket.end();
    await waitUntil(() => client.ended && client.closed && server.closed, 'both sides to close');
    expect(client.hadError).to.equal(false);
    expect(server.hadError).to.equal(false);
    expect(client.received().toString()).to.equal('reply');
    await waitUntil(() => proxy.connections === 0, 'the proxy to forget the connection');
  });

  it('holds a FIN sent during a blackhole and forwards it after heal()', async () => {
    const { proxy, connectPair } = await setup();
    const { client, server } = await connectPair();
    proxy.blackhole('client-to-server');
    client.socket.end();
    await delay(SILENCE_MS);
    expect(server.ended).to.equal(false);
    proxy.heal();
    await waitUntil(() => server.ended, "the server's 'end'");
  });

  it('setLatency() delays each direction by at least the delay and preserves order', async () => {
    const { proxy, connectPair } = await setup({ echo: true });
    const { client } = await connectPair();
    const echoOnce = async (msg: string): Promise<number> => {
      const n0 = client.receivedBytes;
      const t0 = performance.now();
      await write(client.socket, msg);
      await client.waitForBytes(n0 + msg.length);
      return performance.now() - t0;
    };
    await echoOnce('warm-up');

    proxy.setLatency(150, 'client-to-server');
    expect(await echoOnce('one way')).to.be.at.least(149);

    proxy.setLatency(100);
    expect(await echoOnce('both ways')).to.be.at.least(199);

    // Many small writes under latency come out in order.
    const n0 = client.receivedBytes;
    const expected: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(i);
      expected.push(b);
      client.socket.write(b);
    }
    await client.waitForBytes(n0 + 800);
    expect(client.received().subarray(n0).equals(Buffer.concat(expected))).to.equal(true);

    proxy.setLatency(0);
    await echoOnce('no delay');
  });

  it('setBandwidth() caps the rate (200 KB at 100 KB/s takes >= 1.5 s); undefined removes the cap', async () => {
    const { proxy, connectPair } = await setup();
    const { client, server } = await connectPair();
    proxy.setBandwidth(100_000, 'client-to-server');
    const data = randomBytes(200_000);
    const t0 = performance.now();
    client.socket.write(data);
    await server.waitForBytes(data.length, 10_000);
    expect(performance.now() - t0).to.be.at.least(1500);
    expect(server.received().equals(data)).to.equal(true);

    proxy.setBandwidth(undefined, 'client-to-server');
    const t1 = performance.now();
    client.socket.write(data);
    await server.waitForBytes(2 * data.length);
    expect(performance.now() - t1, 'uncapped (generous bound)').to.be.below(1500);
    expect(server.received().subarray(data.length).equals(data)).to.equal(true);
  });

  it('setSlicing() delivers many small chunks with the bytes intact', async () => {
    const { proxy, connectPair } = await setup();
    const { client, server } = await connectPair();
    proxy.setSlicing(16);
    const data = randomBytes(4096); // 256 slices
    client.socket.write(data);
    await server.waitForBytes(data.length);
    expect(server.received().equals(data)).to.equal(true);
    expect(server.chunks.length, 'reads seen by the receiver').to.be.at.least(64);

    proxy.setSlicing(undefined);
    await roundTrip(client, server, 'unsliced');
  });

  it('reset() sends RST to both sides of every connection; the proxy keeps serving', async () => {
    const { proxy, connectPair } = await setup();
    const a = await connectPair();
    const b = await connectPair();
    await roundTrip(a.client, a.server, 'a');
    proxy.reset();
    const ends = [a.client, a.server, b.client, b.server];
    await waitUntil(() => ends.every((w) => w.closed), 'every socket to close');
    for (const w of ends) {
      expect(w.hadError, 'closed with an error').to.equal(true);
      expect(w.error?.code).to.be.oneOf(['ECONNRESET', 'EPIPE']);
    }
    await waitUntil(() => proxy.connections === 0, 'the proxy to forget the connections');
    const c = await connectPair();
    await roundTrip(c.client, c.server, 'after reset');
  });

  it('passes an RST from one side on to the other', async () => {
    const { connectPair } = await setup();
    const { client, server } = await connectPair();
    await roundTrip(client, server, 'x');
    client.socket.resetAndDestroy();
    await waitUntil(() => server.closed, 'the server socket to close');
    expect(server.error?.code).to.equal('ECONNRESET');
  });

  it('resets the client when the target refuses the connection, without crashing', async () => {
    const dead = net.createServer();
    await new Promise<void>((resolve) => dead.listen(0, HOST, resolve));
    const { port: deadPort } = dead.address() as net.AddressInfo;
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    const proxy = new FaultProxy({ target: { host: HOST, port: deadPort } });
    proxies.push(proxy);
    const { port } = await proxy.listen();
    const socket = net.connect({ host: HOST, port });
    sockets.push(socket);
    const client = watch(socket);
    await waitUntil(() => client.closed, 'the client to close');
    expect(client.hadError).to.equal(true);
    expect(client.error?.code).to.be.oneOf(['ECONNRESET', 'EPIPE']);
    await waitUntil(() => proxy.connections === 0, 'the proxy to forget the connection');
  });

  it('refuseNew() resets new connections while current ones keep working', async () => {
    const { proxy, connectPair, accepted } = await setup();
    const { client, server } = await connectPair();
    proxy.refuseNew(true);
    const socket = net.connect({ host: HOST, port: proxy.address!.port });
    sockets.push(socket);
    const refused = watch(socket);
    await waitUntil(() => refused.closed, 'the refused client to close');
    expect(refused.error?.code).to.be.oneOf(['ECONNRESET', 'EPIPE']);
    expect(proxy.stats.refusedConnections).to.equal(1);
    expect(accepted).to.have.length(1);
    await roundTrip(client, server, 'still fine');
    proxy.refuseNew(false);
    const next = await connectPair();
    await roundTrip(next.client, next.server, 'accepted again');
  });

  it('bounds memory: pauses the sender at maxQueuedBytes, but keeps reading (and discarding) in a blackhole', async () => {
    const cap = 64 * 1024;
    const { proxy, connectPair } = await setup({ maxQueuedBytes: cap });
    const { client } = await connectPair();
    proxy.setBandwidth(1000, 'client-to-server');
    const total = 32 * 1024 * 1024; // more than the kernel buffers on both legs can absorb
    const written = write(client.socket, Buffer.alloc(total, 7));
    // Backpressure reaches the sender: data piles up in its own user-space buffer.
    await waitUntil(
      () => client.socket.writableLength > 0 && proxy.stats.clientToServer.queuedBytes > cap / 2,
      'backpressure',
    );
    await delay(100);
    expect(client.socket.writableLength).to.be.above(0);
    // At most one socket read (64 KiB) beyond the cap.
    expect(proxy.stats.clientToServer.queuedBytes).to.be.at.most(cap + 64 * 1024);

    proxy.blackhole('client-to-server');
    await written; // everything leaves the sender: the proxy reads on and discards
    await waitUntil(() => {
      const s = proxy.stats.clientToServer;
      return s.forwardedBytes + s.discardedBytes === total;
    }, 'every byte to be forwarded or discarded');
    expect(proxy.stats.clientToServer.queuedBytes).to.equal(0);
  });

  it('close() ends every connection, clears its timers and leaves no handle behind', async () => {
    // Mocha arms its own timeout timer only once the test is under way: measure after a turn.
    await new Promise((resolve) => setImmediate(resolve));
    const before = resourceCounts();
    const { proxy, connectPair, connectClient } = await setup();
    const { client, server } = await connectPair();
    // A pending latency timer, a pending slicing immediate, and a held connection.
    proxy.setLatency(60_000, 'client-to-server');
    proxy.setSlicing(1, 'server-to-client');
    await write(client.socket, 'delayed');
    await write(server.socket, randomBytes(64 * 1024));
    await client.waitForBytes(1);
    await waitUntil(() => proxy.stats.clientToServer.queuedBytes > 0, 'queued data');
    proxy.blackhole('server-to-client');
    const held = await connectClient();
    expect(proxy.connections).to.equal(2);

    const closing = proxy.close();
    expect(proxy.close()).to.equal(closing);
    await closing;
    expect(proxy.connections).to.equal(0);
    // The peers use allowHalfOpen, so they see the proxy's FIN (or RST) without closing themselves.
    await waitUntil(
      () => [client, held, server].every((w) => w.ended || w.closed),
      'all peers to see the proxy go away',
    );
    await cleanUp();
    // Allow the last handles a few turns to finish closing.
    await waitUntil(
      () => {
        const after = resourceCounts();
        return RESOURCE_KINDS.every((k) => after[k] <= before[k]);
      },
      'handles to be released',
      2000,
    );
    let listenError: unknown;
    await proxy.listen().catch((err: unknown) => (listenError = err));
    expect(listenError, 'listen() after close()').to.be.instanceOf(Error);
  });
});
