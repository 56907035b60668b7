/**
 * A real partition between two network namespaces (../shared/netlab/netlab.sh): heartwire in
 * namespace a (client) and b (server), and beside it a plain TCP connection with keepalive.
 * Root only; skipped cleanly elsewhere (netlab exits 77 when it cannot run).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { now, Peer, PEER_FIXTURE, REPO_ROOT, report, sleep, useHarness } from './helpers.js';

const NETLAB = process.env.NETLAB_SH ?? path.resolve(REPO_ROOT, '../shared/netlab/netlab.sh');
const SKIP = 77;
const IDLE = 1000;
const MARGIN = 1500;
/** How long we watch the plain keepalive socket after the partition (informational). */
const PLAIN_WATCH = 14_000;

class NetLab {
  readonly env: NodeJS.ProcessEnv = { ...process.env, NETLAB_ID: `hw${process.pid}` };
  readonly peers: Peer[] = [];
  private isUp = false;
  private readonly onExit = (): void => this.down();

  /** 'skip' with a reason when this machine cannot run the lab. */
  up(): string | undefined {
    const r = spawnSync(NETLAB, ['up'], { env: this.env, encoding: 'utf8', timeout: 30_000 });
    if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return `${NETLAB} not found`;
    if (r.status === SKIP) return r.stderr.trim();
    if (r.status !== 0) throw new Error(`netlab up: ${r.stderr}`);
    this.isUp = true;
    process.once('exit', this.onExit);
    return undefined;
  }

  run(...args: string[]): void {
    const r = spawnSync(NETLAB, args, { env: this.env, encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`netlab ${args.join(' ')}: ${r.stderr}`);
  }

  /** Run fixtures/peer.ts inside side a or b. */
  node(side: 'a' | 'b', mode: string, options: Record<string, unknown>): Peer {
    const peer = new Peer(
      NETLAB,
      ['exec', side, process.execPath, '--import', 'tsx', PEER_FIXTURE, mode, JSON.stringify(options)],
      this.env,
    );
    this.peers.push(peer);
    return peer;
  }

  down(): void {
    for (const peer of this.peers) peer.kill();
    if (!this.isUp) return;
    spawnSync(NETLAB, ['down'], { env: this.env, timeout: 30_000 });
    this.isUp = false;
    process.off('exit', this.onExit);
  }
}

function hasNft(): boolean {
  return spawnSync('sh', ['-c', 'command -v nft'], { encoding: 'utf8' }).status === 0;
}

describe('node transport: real partition (netlab, root only)', function () {
  this.timeout(30_000);
  const lab = new NetLab();

  before(function () {
    this.timeout(90_000);
    const skip = (why: string): void => {
      console.log(`      (skipped: ${why})`);
      this.skip();
    };
    if (process.platform !== 'linux') return skip('netlab needs Linux');
    if (process.getuid?.() !== 0) return skip('netlab needs root');
    if (!fs.existsSync(NETLAB)) return skip(`${NETLAB} not found`);
    if (!hasNft()) {
      // Root and Debian: installing nftables takes a few seconds; anything else, skip.
      spawnSync('apt-get', ['install', '-y', 'nftables'], {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
        stdio: 'ignore',
        timeout: 60_000,
      });
      if (!hasNft()) return skip("'nft' is missing and could not be installed (apt-get install -y nftables)");
    }
    const why = lab.up();
    if (why !== undefined) return skip(`netlab: ${why}`);
  });

  after(() => lab.down());
  // Unhandled-rejection and leaked-handle checks; the harness kills the children after the test.
  const h = useHarness();

  it('heartwire detects a silent partition within idleTimeout + margin; a plain keepalive socket does not', async () => {
    const server = h().track(lab.node('b', 'lab-server', { idleTimeout: IDLE, lifetime: 45_000 }));
    const { port, plainPort } = (await server.next('listening', 20_000)) as unknown as {
      port: number;
      plainPort: number;
    };
    const client = h().track(
      lab.node('a', 'lab-client', { port, plainPort, idleTimeout: IDLE, lifetime: 45_000 }),
    );
    await client.next('open', 20_000);
    await server.next('connection', 5000);
    await sleep(500); // steady state: heartbeats flowing

    lab.run('partition');
    const t0 = now();
    const [clientClosed, serverClosed] = await Promise.all([
      client.next('hw-closed', IDLE + MARGIN + 3000),
      server.next('hw-closed', IDLE + MARGIN + 3000),
    ]);
    const clientMs = clientClosed.at - t0;
    const serverMs = serverClosed.at - t0;
    // The plain socket, same lab, same partition: give it the same time, and then some.
    const plainBy = Math.max(clientMs, serverMs, IDLE + MARGIN);
    await sleep(Math.max(0, t0 + plainBy - now()));
    const plainEarly = await client.next('plain-event', 1).catch(() => undefined);
    let plain = plainEarly;
    if (plain === undefined)
      plain = await client.next('plain-event', PLAIN_WATCH - (now() - t0)).catch(() => undefined);
    const plainText =
      plain === undefined
        ? `nothing within ${(PLAIN_WATCH / 1000).toFixed(0)} s`
        : `'${String(plain.event)}' ${String(plain.code ?? '')} after ${(plain.at - t0).toFixed(0)} ms`;
    report(
      `netlab partition: heartwire client ${String(clientClosed.code)} after ${clientMs.toFixed(0)} ms, ` +
        `server ${String(serverClosed.code)} after ${serverMs.toFixed(0)} ms (idleTimeout ${IDLE}, bound ${IDLE + MARGIN}); ` +
        `plain socket with setKeepAlive(true, 1000): ${plainText}`,
    );
    expect(clientClosed.code).to.equal('HEARTBEAT_TIMEOUT');
    expect(serverClosed.code).to.equal('HEARTBEAT_TIMEOUT');
    expect(clientMs).to.be.below(IDLE + MARGIN);
    expect(serverMs).to.be.below(IDLE + MARGIN);
    expect(plainEarly, 'the plain keepalive socket noticed the partition as fast as heartwire').to.equal(
      undefined,
    );
  });
});
