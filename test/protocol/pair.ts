/**
 * A minimal, lossless, zero-latency driver joining two engines, for unit tests of specific
 * engine behaviours. (Model-based tests use the public simulated network in src/testing.)
 */
import { Engine } from '../../src/protocol/engine.js';
import type { EngineEvent, EngineOptions } from '../../src/protocol/types.js';

export interface Side {
  engine: Engine;
  events: EngineEvent[];
  /** Bytes written and not yet delivered (when the link is cut). */
  ended: boolean;
}

export class Pair {
  now = 0;
  readonly client: Side;
  readonly server: Side;
  /** When false, bytes are dropped silently (a dead path). */
  linkUp = true;

  constructor(clientOptions: Partial<EngineOptions> = {}, serverOptions: Partial<EngineOptions> = {}) {
    this.client = { engine: new Engine({ role: 'client', ...clientOptions }), events: [], ended: false };
    this.server = { engine: new Engine({ role: 'server', ...serverOptions }), events: [], ended: false };
    this.server.engine.start(this.now);
    this.client.engine.start(this.now);
    this.pump();
  }

  /** Move bytes both ways until nothing moves; collect events. */
  pump(): void {
    for (let rounds = 0; rounds < 10_000; rounds++) {
      const moved = this.flush(this.client, this.server) + this.flush(this.server, this.client);
      if (moved === 0) return;
    }
    throw new Error('pump did not settle');
  }

  private flush(from: Side, to: Side): number {
    let moved = 0;
    const chunks = from.engine.pollTransmit(this.now);
    for (const chunk of chunks) {
      moved += chunk.length;
      if (this.linkUp) to.engine.receive(this.now, chunk);
    }
    for (let e = from.engine.pollEvent(); e !== undefined; e = from.engine.pollEvent()) {
      from.events.push(e);
      if (e.type === 'end-transport' && this.linkUp) {
        to.engine.receiveEnd(this.now);
        moved++;
      }
      if (e.type === 'closed' && !from.ended) {
        from.ended = true;
        for (const chunk of from.engine.pollTransmit(this.now))
          if (this.linkUp) to.engine.receive(this.now, chunk);
        if (this.linkUp) to.engine.receiveEnd(this.now);
        moved++;
      }
    }
    return moved;
  }

  /** Advance time to `t`, firing deadlines in order. */
  advanceTo(t: number): void {
    for (let i = 0; i < 1_000_000; i++) {
      const deadlines = [this.client.engine.nextDeadline(), this.server.engine.nextDeadline()].filter(
        (d): d is number => d !== undefined && d <= t,
      );
      if (deadlines.length === 0) break;
      this.now = Math.max(this.now, Math.min(...deadlines));
      this.client.engine.handleTimeout(this.now);
      this.server.engine.handleTimeout(this.now);
      this.pump();
    }
    this.now = t;
    this.pump();
  }

  eventsOf(side: Side, type: EngineEvent['type']): EngineEvent[] {
    return side.events.filter((e) => e.type === type);
  }
}
