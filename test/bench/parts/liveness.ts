/**
 * Parts 2 and 3 in one session per system: heartbeat/ping RTT while the client saturates the
 * connection with 64 KiB messages (phase "load"), then while the server's application stops
 * consuming for several heartbeat timeouts and the client keeps pushing (phase "stall"), then
 * a short recovery. Payloads are fresh allocations, so memory a sender retains is visible.
 *
 * heartwire's RTT samples are its own heartbeats (`'rtt'` events on both sides); the other
 * systems are pinged by the client every 50 ms. A heartwire false failure is a real connection
 * failure; for the others, "would fail" means a ping waited longer than heartwire's idle timeout,
 * i.e. what a heartbeat at the same timeout on top of that transport would have concluded.
 * @module
 */
import { KiB, sleep, summarizeRtt } from '../lib/common.js';
import type { MemoryPeak, ProcessSnapshot, RttSummary } from '../lib/common.js';
import { spawnChild } from '../lib/child-process.js';
import { loadAverage } from '../lib/machine.js';
import type { System } from '../lib/systems.js';
import type { ProbeReport } from '../peers/types.js';

/** Durations of a liveness session, ms. */
export interface LivenessTiming {
  warmupMs: number;
  loadMs: number;
  stallMs: number;
  recoverMs: number;
  /** The idle timeout heartwire runs with, and the threshold applied to the others' pings. */
  idleTimeoutMs: number;
}

/** RTT and losses of one phase. */
export interface PhaseResult {
  rtt: RttSummary;
  /** Pings sent in the phase and how many of them were answered in it (not for heartwire). */
  pingsSent?: number;
  answered?: number;
  unanswered: number;
  longestWaitMs: number;
  longestGapMs: number;
  /** Messages delivered to the server application during the phase, per second. */
  deliveredPerSec: number;
  /** Payload MB/s delivered. */
  mbPerSec: number;
}

/** Result of one liveness session. */
export interface LivenessResult {
  system: string;
  label: string;
  load?: PhaseResult;
  stall?: PhaseResult;
  recover?: PhaseResult;
  /** heartwire: a connection failure during the session; others: a ping waited > idle timeout in the stall. */
  falseFailure?: boolean;
  falseFailureDetail?: string;
  /** Peak growth during the stall over the after-GC state at its start, bytes. */
  serverPeak?: MemoryPeak;
  clientPeak?: MemoryPeak;
  /** Retained growth: after-GC at the end of the stall minus after-GC at its start, bytes. */
  serverRetained?: { rss: number; js: number };
  clientRetained?: { rss: number; js: number };
  serverInfoEndOfStall?: unknown;
  serverInfoEnd?: unknown;
  clientInfoEnd?: unknown;
  loadavg: number[];
  error?: string;
}

type Snap = ProcessSnapshot & { counters: { messages: number; bytes: number; info?: unknown } };

const MESSAGE_SIZE = 64 * KiB;

function retained(a: Snap, b: Snap): { rss: number; js: number } {
  return { rss: b.rss - a.rss, js: b.heapUsed + b.arrayBuffers - (a.heapUsed + a.arrayBuffers) };
}

function phase(reports: ProbeReport[], s0: Snap, s1: Snap): PhaseResult {
  const seconds = (s1.t - s0.t) / 1000;
  const pings = reports.reduce((a, r) => a + r.pingsSent, 0);
  return {
    rtt: summarizeRtt(reports.flatMap((r) => r.samples)),
    pingsSent: pings > 0 ? pings : undefined,
    answered: pings > 0 ? reports.reduce((a, r) => a + r.answered, 0) : undefined,
    unanswered: reports.reduce((a, r) => a + r.unanswered, 0),
    longestWaitMs: Math.max(...reports.map((r) => r.longestWait)),
    longestGapMs: Math.max(...reports.map((r) => r.longestGap)),
    deliveredPerSec: (s1.counters.messages - s0.counters.messages) / seconds,
    mbPerSec: (s1.counters.bytes - s0.counters.bytes) / seconds / 1e6,
  };
}

function failuresOf(info: unknown): unknown[] {
  const failures = (info as { failures?: unknown[] } | undefined)?.failures;
  return failures ?? [];
}

/** Run one liveness session. Never throws. */
export async function measureLiveness(system: System, timing: LivenessTiming): Promise<LivenessResult> {
  const base = { system: system.id, label: system.label, loadavg: loadAverage() };
  const config = { peer: system.peer, options: system.options, appHeapMb: system.appHeapMb };
  const total = timing.warmupMs + timing.loadMs + timing.stallMs + timing.recoverMs;
  const server = spawnChild(
    `${system.id} server`,
    { role: 'server', ...config },
    { hardLimitMs: 40_000 + total },
  );
  const client = spawnChild(
    `${system.id} client`,
    { role: 'client', ...config },
    { hardLimitMs: 40_000 + total },
  );
  const isHeartwire = system.peer === 'heartwire';
  const reports = async (): Promise<ProbeReport[]> =>
    isHeartwire
      ? Promise.all([server.call<ProbeReport>('probe-report'), client.call<ProbeReport>('probe-report')])
      : [await client.call<ProbeReport>('probe-report')];
  const snaps = (): Promise<[Snap, Snap]> =>
    Promise.all([server.call<Snap>('snap', { info: true }), client.call<Snap>('snap')]);
  try {
    const port = await server.ready;
    await client.ready;
    await client.call('connect', { port, count: 1, parallel: 1 }, 20_000);
    if (isHeartwire) await server.call('probe-start');
    await client.call('probe-start', { intervalMs: 50 });
    await client.call('pump', { size: MESSAGE_SIZE, fresh: true });
    await sleep(timing.warmupMs);

    // Phase A: load.
    await reports();
    const [a0] = await snaps();
    await sleep(timing.loadMs);
    const loadReports = await reports();
    const [a1] = await snaps();
    const load = phase(loadReports, a0, a1);

    // Phase B: stall.
    const [sGc0, cGc0] = await Promise.all([
      server.call<Snap>('snap', { gc: true }),
      client.call<Snap>('snap', { gc: true }),
    ]);
    await Promise.all([server.call('mem-start'), client.call('mem-start')]);
    await server.call('pause');
    await reports();
    const [b0] = await snaps();
    await sleep(timing.stallMs);
    const stallReports = await reports();
    const [b1] = await snaps();
    const [serverPeak, clientPeak] = await Promise.all([
      server.call<MemoryPeak>('mem-stop'),
      client.call<MemoryPeak>('mem-stop'),
    ]);
    const [sGc1, cGc1] = await Promise.all([
      server.call<Snap>('snap', { gc: true, info: true }),
      client.call<Snap>('snap', { gc: true }),
    ]);
    const stall = phase(stallReports, b0, b1);

    // Phase C: recovery.
    await server.call('resume');
    await sleep(timing.recoverMs);
    const recoverReports = await reports();
    const [c1] = await snaps();
    const recover = phase(recoverReports, b1, c1);
    await client.call('stop-pump');
    const [serverInfoEnd, clientInfoEnd] = await Promise.all([server.call('info'), client.call('info')]);

    let falseFailure: boolean;
    let falseFailureDetail: string;
    if (isHeartwire) {
      const failures = [...failuresOf(serverInfoEnd), ...failuresOf(clientInfoEnd)];
      falseFailure = failures.length > 0;
      falseFailureDetail = falseFailure ? JSON.stringify(failures) : 'no connection failure';
    } else {
      falseFailure = stall.longestWaitMs > timing.idleTimeoutMs;
      falseFailureDetail = `longest ping wait in stall ${stall.longestWaitMs.toFixed(0)} ms vs ${timing.idleTimeoutMs} ms`;
    }
    return {
      ...base,
      load,
      stall,
      recover,
      falseFailure,
      falseFailureDetail,
      serverPeak,
      clientPeak,
      serverRetained: retained(sGc0, sGc1),
      clientRetained: retained(cGc0, cGc1),
      serverInfoEndOfStall: sGc1.counters.info,
      serverInfoEnd,
      clientInfoEnd,
    };
  } catch (error) {
    return { ...base, error: String(error) };
  } finally {
    await Promise.all([client.exit(), server.exit()]);
  }
}
