/**
 * `heartwire ping host:port`: like ping(8), over a heartwire connection. Each line shows the
 * round-trip time of a probe (echoed by `heartwire serve`), the RTT measured by heartbeats,
 * the credit each way, and heartbeat and byte counts.
 * @module
 */
import { connect } from '../index.js';
import type { Connection, GoAwayInfo } from '../index.js';
import { bytes, delay, hostPort, integer, ms, parse, UsageError } from './util.js';
import type { Output } from './util.js';

/** Help text of `heartwire ping`. */
export const pingHelp = `usage: heartwire ping host:port [options]

Connect to a heartwire server and print a line per interval until Ctrl-C (or --count lines),
then a summary. Each interval sends a 16-byte probe; a server that echoes it (heartwire serve
does by default) gives its round-trip time.

options:
  --interval MS       time between lines (default 1000)
  --count N           stop after N lines (default: until Ctrl-C)
  --idle-timeout MS   silence tolerated before the server is declared dead (default 3 x interval, at least 1000)
  --timeout MS        bound on connecting and on the handshake (default 5000)
  --passive           send no probes: only heartbeats (RTT from heartbeats only)
  -h, --help          show this help

columns: rtt (probe echo), hb-rtt (last heartbeat sample), credit out/in (bytes this side may
still send / the server may still send), heartbeats and bytes sent/received.
exit status: 0 when stopped by Ctrl-C or --count, 1 when the connection fails.`;

/** Probe: "HWPG", sequence number (u32), send time (f64). */
const PROBE_MAGIC = 0x48575047;

function probe(seq: number, sentAt: number): Uint8Array {
  const view = new DataView(new ArrayBuffer(16));
  view.setUint32(0, PROBE_MAGIC);
  view.setUint32(4, seq);
  view.setFloat64(8, sentAt);
  return new Uint8Array(view.buffer);
}

function readProbe(message: Uint8Array): { seq: number; sentAt: number } | undefined {
  if (message.length !== 16) return undefined;
  const view = new DataView(message.buffer, message.byteOffset, 16);
  if (view.getUint32(0) !== PROBE_MAGIC) return undefined;
  return { seq: view.getUint32(4), sentAt: view.getFloat64(8) };
}

/** Run `heartwire ping`; resolves with the exit code. `stop` resolves on Ctrl-C. */
export async function ping(args: string[], output: Output, stop: Promise<unknown>): Promise<number> {
  const { values, positionals } = parse({
    args,
    allowPositionals: true,
    options: {
      interval: { type: 'string' },
      count: { type: 'string' },
      'idle-timeout': { type: 'string' },
      timeout: { type: 'string' },
      passive: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    output.out(pingHelp);
    return 0;
  }
  if (positionals.length !== 1)
    throw new UsageError(positionals.length === 0 ? 'missing host:port' : 'expected one host:port');
  const target = hostPort(positionals[0]!);
  const interval = integer(values.interval, 'interval', 1000, 10);
  const count = integer(values.count, 'count', 0);
  const idleTimeout = integer(
    values['idle-timeout'],
    'idle-timeout',
    Math.max(1000, 3 * interval),
    100,
    86_400_000,
  );
  const timeout = integer(values.timeout, 'timeout', 5000, 1);
  const name = `${target.host}:${target.port}`;

  let conn: Connection;
  try {
    conn = await connect({ ...target, idleTimeout, connectTimeout: timeout, handshakeTimeout: timeout });
  } catch (error) {
    output.err(`heartwire ping: ${(error as Error).message}`);
    return 1;
  }
  const n = conn.negotiated!;
  output.out(
    `PING ${name}: heartwire v${n.version}, idle timeout ${n.localIdleTimeoutMs} ms here and ${n.peerIdleTimeoutMs} ms ` +
      `at the server; heartbeats every ~${Math.round(n.heartbeatIntervalMs)} ms from here`,
  );

  // Echoed probes, by sequence number.
  const echoes = new Map<number, number>();
  void (async () => {
    for await (const message of conn) {
      const echoed = readProbe(message);
      if (echoed !== undefined) echoes.set(echoed.seq, performance.now() - echoed.sentAt);
    }
  })().catch(() => {}); // a failure is reported through `closed` below
  let failure: Error | undefined;
  const closed = conn.closed.then(
    () => 'closed' as const,
    (error: Error) => {
      failure = error;
      return 'closed' as const;
    },
  );
  const stopped = stop.then(() => 'stopped' as const);
  // The server is shutting down (GOAWAY): stop probing and end within its grace, as a client should.
  const goneAway = new Promise<'goaway'>((resolve) => {
    const onGoAway = (goAway: GoAwayInfo): void => {
      output.out(`goaway from ${name}: ${goAway.message || 'the server is shutting down'}; ending`);
      resolve('goaway');
    };
    if (conn.goAway !== undefined) onGoAway(conn.goAway);
    else conn.once('goaway', onGoAway);
  });

  const started = performance.now();
  let sent = 0;
  for (let seq = 1; count === 0 || seq <= count; seq++) {
    if (!values.passive) {
      try {
        conn.write(probe(seq, performance.now()));
        sent++;
      } catch {
        break; // closed: reported below
      }
    }
    const outcome = await Promise.race([
      delay(interval).then(() => 'tick' as const),
      stopped,
      closed,
      goneAway,
    ]);
    if (outcome !== 'tick') break;
    const s = conn.stats();
    output.out(
      [
        `seq=${seq}`,
        `rtt ${values.passive ? '-' : ms(echoes.get(seq))}`,
        `hb-rtt ${ms(s.rttMs)}`,
        `credit out ${bytes(s.sendCredit)} in ${bytes(s.receiveCredit)}`,
        `heartbeats out ${s.heartbeatsSent} in ${s.heartbeatsReceived}`,
        `bytes out ${bytes(s.bytesSent)} in ${bytes(s.bytesReceived)}`,
      ].join('  '),
    );
  }
  const elapsed = performance.now() - started;
  if (failure === undefined) await end(conn);
  else output.err(`heartwire ping: connection to ${name} lost: ${describe(failure)}`);

  const s = conn.stats();
  const rtts = [...echoes.values()];
  output.out(`--- ${name} heartwire ping statistics ---`);
  if (!values.passive) {
    const lost = sent - rtts.length;
    output.out(`${sent} probes sent, ${rtts.length} echoed, ${lost} unanswered, time ${ms(elapsed)}`);
  }
  if (rtts.length > 0) {
    const avg = rtts.reduce((a, b) => a + b, 0) / rtts.length;
    output.out(`rtt min/avg/max = ${ms(Math.min(...rtts))} / ${ms(avg)} / ${ms(Math.max(...rtts))}`);
  }
  output.out(
    `heartbeat rtt ${ms(s.smoothedRttMs)} (smoothed); heartbeats sent ${s.heartbeatsSent}, received ${s.heartbeatsReceived}; ` +
      `bytes sent ${bytes(s.bytesSent)}, received ${bytes(s.bytesReceived)}; blocked on credit ${ms(s.creditBlockedMs)}`,
  );
  return failure === undefined ? 0 : 1;
}

/** `CODE: message` for heartwire errors. */
function describe(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
}

/** End the connection gracefully, but never wait more than 2 s for it. */
async function end(conn: Connection): Promise<void> {
  const ended = conn.end().then(
    () => true,
    () => true,
  );
  if (!(await Promise.race([ended, delay(2000).then(() => false)]))) conn.abort();
}
