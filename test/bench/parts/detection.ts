/**
 * Part 4: failure detection after a black hole. Client → FaultProxy (`src/testing`) → server,
 * three processes. Once the connection is in the state under test, the proxy black-holes both
 * directions (it keeps accepting and ACKing bytes and discards them, like a dead path behind a
 * middlebox) and each side reports when it declares the connection dead.
 *
 * Cases: `idle` (nothing sent), `sending` (the client pushes 64 KiB messages), `stalled` (the
 * client pushes and the server's application stopped consuming before the black hole).
 * Systems: heartwire, and a plain socket with keepalive set like heartwire's safety net.
 * @module
 */
import { sleep } from '../lib/common.js';
import { spawnChild } from '../lib/child-process.js';
import { loadAverage } from '../lib/machine.js';
import type { System } from '../lib/systems.js';
import type { Failure } from '../peers/heartwire.js';

/** The state the connection is in when the path dies. */
export type DetectionCase = 'idle' | 'sending' | 'stalled';

/** Result of one detection run. */
export interface DetectionResult {
  system: string;
  label: string;
  case: DetectionCase;
  idleTimeoutMs: number;
  /** heartwire's bound: idle timeout + one heartbeat period of the peer (a third of its timeout). */
  boundMs: number;
  /** How long the bench waited after the black hole. */
  waitedMs: number;
  /** ms from the black hole to the side's first failure, or undefined if none within the wait. */
  clientMs?: number;
  serverMs?: number;
  clientCode?: string;
  serverCode?: string;
  loadavg: number[];
  error?: string;
}

interface Info {
  failures?: Failure[];
}

/** Run one detection case for one system. Never throws. */
export async function measureDetection(
  system: System,
  testCase: DetectionCase,
  idleTimeoutMs: number,
  options: { settleMs: number; extraWaitMs: number },
): Promise<DetectionResult> {
  const boundMs = idleTimeoutMs + idleTimeoutMs / 3;
  const waitMs = boundMs + options.extraWaitMs;
  const base = {
    system: system.id,
    label: system.label,
    case: testCase,
    idleTimeoutMs,
    boundMs,
    waitedMs: waitMs,
    loadavg: loadAverage(),
  };
  const config = { peer: system.peer, options: system.options };
  const limit = { hardLimitMs: 30_000 + options.settleMs + waitMs };
  const server = spawnChild(`${system.id} server`, { role: 'server', ...config }, limit);
  const client = spawnChild(`${system.id} client`, { role: 'client', ...config }, limit);
  let proxy: ReturnType<typeof spawnChild> | undefined;
  try {
    const serverPort = await server.ready;
    proxy = spawnChild('proxy', { role: 'proxy', peer: '', options: { targetPort: serverPort } }, limit);
    const port = await proxy.ready;
    await client.ready;
    await client.call('connect', { port, count: 1, parallel: 1 }, 20_000);
    if (testCase === 'stalled') await server.call('pause');
    if (testCase !== 'idle') await client.call('pump', { size: 64 * 1024, fresh: false });
    await sleep(options.settleMs);
    const t0 = await proxy.call<number>('blackhole');
    const deadline = t0 + waitMs;
    let serverFailure: Failure | undefined;
    let clientFailure: Failure | undefined;
    while (Date.now() < deadline && (serverFailure === undefined || clientFailure === undefined)) {
      await sleep(50);
      const [s, c] = await Promise.all([server.call<Info>('info'), client.call<Info>('info')]);
      serverFailure ??= s.failures?.[0];
      clientFailure ??= c.failures?.[0];
    }
    const within = (f: Failure | undefined): number | undefined =>
      f !== undefined && f.t - t0 <= waitMs ? f.t - t0 : undefined;
    return {
      ...base,
      clientMs: within(clientFailure),
      serverMs: within(serverFailure),
      clientCode: clientFailure?.code,
      serverCode: serverFailure?.code,
    };
  } catch (error) {
    return { ...base, error: String(error) };
  } finally {
    await client.call('stop-pump').catch(() => {});
    await Promise.all([client.exit(), server.exit(), proxy?.exit()]);
  }
}
