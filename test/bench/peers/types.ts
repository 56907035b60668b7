/**
 * What every system under test implements inside a child process, so that the scenarios
 * (throughput, liveness, stall) are written once.
 * @module
 */
import { now } from '../lib/common.js';

/** Messages and payload bytes. */
export interface Counter {
  messages: number;
  bytes: number;
}

/** Options passed from the orchestrator to a peer module (both roles). */
export interface PeerOptions {
  /** Peer-specific settings, e.g. `{ window: 16777216 }` for http2 or heartwire options. */
  [key: string]: unknown;
}

/** The server side of a system under test. */
export interface PeerServer {
  /** Messages and payload bytes delivered to the application so far. */
  readonly delivered: Counter;
  /** Listen on 127.0.0.1, any port; resolves to the port. */
  listen(): Promise<number>;
  /** The application stops consuming messages (the transport keeps doing what it does). */
  pause(): void;
  /** The application consumes again. */
  resume(): void;
  /** Start recording the RTT samples this side measures itself (heartwire only). */
  startProbe?(probe: ProbeRecorder): void;
  /** Peer-specific gauges and errors seen (held bytes, connection errors, …). */
  info(): Record<string, unknown>;
}

/** The client side of a system under test. */
export interface PeerClient {
  /** Messages and payload bytes accepted by the transport (queued or written) so far. */
  readonly sent: Counter;
  /** Open `count` connections to `127.0.0.1:port`, at most `parallel` at a time. */
  connect(port: number, count: number, parallel: number): Promise<void>;
  /**
   * Push messages of `size` bytes on every connection as fast as back-pressure allows. With
   * `fresh`, each message is a new allocation (memory retained by the sender becomes visible);
   * otherwise one buffer is re-sent.
   */
  pump(size: number, fresh: boolean): void;
  /** Stop pushing. */
  stopPump(): void;
  /** Probe RTT on the first connection every `intervalMs` (a ping, or heartwire's own heartbeats). */
  startProbe?(intervalMs: number, probe: ProbeRecorder): void;
  stopProbe?(): void;
  /** Peer-specific gauges and errors seen. */
  info(): Record<string, unknown>;
}

/** A peer module: `peers/<name>.ts` exports these two factories. */
export interface PeerModule {
  createServer(options: PeerOptions): PeerServer;
  createClient(options: PeerOptions): PeerClient;
}

/** RTT samples of one phase, as reported to the orchestrator. */
export interface ProbeReport {
  /** RTT samples in ms. */
  samples: number[];
  /** Pings sent in the phase (0 for heartwire, whose heartbeats are not counted here). */
  pingsSent: number;
  /** Pings sent in the phase and answered within it. */
  answered: number;
  /** Pings still unanswered at the end of the phase (including older ones). */
  unanswered: number;
  /** Longest time a ping waited for its answer (unanswered ones count until the report), ms. */
  longestWait: number;
  /** Longest stretch without any answer or sample, within the phase, ms. */
  longestGap: number;
}

/**
 * Records pings and answers (or direct RTT samples) and reports them phase by phase.
 * All times are this process's monotonic clock.
 */
export class ProbeRecorder {
  private samples: number[] = [];
  /** Ping sequence number → [sent at, phase]. */
  private readonly outstanding = new Map<number, [number, number]>();
  private nextSeq = 1;
  private phase = 0;
  private pingsSent = 0;
  private answered = 0;
  private phaseStart = now();
  private lastAnswer = now();
  private longestGap = 0;
  private longestWait = 0;

  /** Register a ping about to be sent; returns its sequence number. */
  ping(): number {
    const seq = this.nextSeq++;
    this.outstanding.set(seq, [now(), this.phase]);
    this.pingsSent++;
    return seq;
  }

  /** Number of pings in flight. */
  get inFlight(): number {
    return this.outstanding.size;
  }

  /** The answer to ping `seq` arrived. */
  answer(seq: number): void {
    const entry = this.outstanding.get(seq);
    if (entry === undefined) return;
    this.outstanding.delete(seq);
    if (entry[1] === this.phase) this.answered++;
    this.sample(now() - entry[0]);
  }

  /** A directly measured RTT sample (heartwire's `rtt` event). */
  sample(rttMs: number): void {
    const t = now();
    this.samples.push(rttMs);
    this.longestWait = Math.max(this.longestWait, rttMs);
    this.longestGap = Math.max(this.longestGap, t - Math.max(this.lastAnswer, this.phaseStart));
    this.lastAnswer = t;
  }

  /** Report the phase that ends now and start the next one. */
  report(): ProbeReport {
    const t = now();
    let longestWait = this.longestWait;
    for (const [sentAt] of this.outstanding.values()) longestWait = Math.max(longestWait, t - sentAt);
    const report: ProbeReport = {
      samples: this.samples,
      pingsSent: this.pingsSent,
      answered: this.answered,
      unanswered: this.outstanding.size,
      longestWait,
      longestGap: Math.max(this.longestGap, t - Math.max(this.lastAnswer, this.phaseStart)),
    };
    this.samples = [];
    this.phase++;
    this.pingsSent = 0;
    this.answered = 0;
    this.longestWait = 0;
    this.longestGap = 0;
    this.phaseStart = t;
    return report;
  }
}

/** A payload source: one reused buffer, or a fresh allocation per message. */
export function payloadSource(size: number, fresh: boolean): () => Uint8Array {
  if (fresh) return () => new Uint8Array(size);
  const shared = new Uint8Array(size).fill(0x5a);
  return () => shared;
}

/** How one connection's sender loop talks to its transport. */
export interface PumpHooks {
  /** Still pumping? */
  active(): boolean;
  /** Send one message; false when the transport wants the sender to wait. */
  send(): boolean;
  /** Call `resume` once the transport is writable again. */
  wait(resume: () => void): void;
  /** Hand batched bytes to the transport before yielding (batching peers). */
  flush?(): void;
}

/** Longest a sender loop runs before it yields to the event loop (timers, IPC, pings), ms. */
const PUMP_SLICE_MS = 5;

/**
 * Run a sender loop: send until the transport pushes back, then wait for it. The loop also
 * yields (setImmediate) every {@link PUMP_SLICE_MS} ms, since on loopback a transport may keep
 * accepting synchronously and starve timers and IPC.
 */
export function runPump(hooks: PumpHooks): void {
  const loop = (): void => {
    const until = now() + PUMP_SLICE_MS;
    let count = 0;
    while (hooks.active()) {
      if (!hooks.send()) {
        hooks.flush?.();
        hooks.wait(loop);
        return;
      }
      if ((++count & 127) === 0 && now() > until) {
        hooks.flush?.();
        setImmediate(loop);
        return;
      }
    }
    hooks.flush?.();
  };
  loop();
}
