/**
 * A minimal, lossless, zero-latency link joining two engines, for unit tests of specific engine
 * behaviours. Each engine is driven by the simulations' adapter loop (`EngineDriver` of
 * src/testing, one timer per engine on a virtual clock); the link moves bytes on `pump()`.
 * (Model-based tests use the public simulated network in src/testing.)
 */
import { Engine } from '../../src/protocol/engine.js';
import type { EngineEvent, EngineOptions } from '../../src/protocol/types.js';
import { VirtualClock } from '../../src/testing/clock.js';
import { EngineDriver } from '../../src/testing/engine-driver.js';

export interface Side {
  engine: Engine;
  events: EngineEvent[];
  /** The engine closed (its last bytes and the end of stream went to the peer). */
  ended: boolean;
  driver: EngineDriver;
  /** Bytes and end of stream on their way to the peer, moved by `pump()`. */
  outbox: (Uint8Array | 'eof')[];
}

export class Pair {
  readonly clock = new VirtualClock();
  readonly client: Side;
  readonly server: Side;
  /** When false, bytes are dropped silently (a dead path). */
  linkUp = true;

  constructor(clientOptions: Partial<EngineOptions> = {}, serverOptions: Partial<EngineOptions> = {}) {
    this.client = this.side(new Engine({ role: 'client', ...clientOptions }));
    this.server = this.side(new Engine({ role: 'server', ...serverOptions }));
    this.server.driver.start();
    this.client.driver.start();
    this.pump();
  }

  get now(): number {
    return this.clock.now;
  }

  /** Both processes are stopped until `t`: time moves on and no timer fires meanwhile. */
  set now(t: number) {
    for (const side of [this.client, this.server]) side.driver.cancelTimer();
    this.clock.advanceTo(t);
    for (const side of [this.client, this.server]) side.driver.armTimer();
  }

  private side(engine: Engine): Side {
    const side = { engine, events: [], ended: false, outbox: [] } as unknown as Side;
    const send = (chunk: Uint8Array | 'eof'): void => {
      if (this.linkUp) side.outbox.push(chunk);
    };
    side.driver = new EngineDriver(
      engine,
      this.clock,
      {
        room: () => Number.POSITIVE_INFINITY,
        backlog: () => 0,
        write: (chunks) => {
          for (const chunk of chunks) send(chunk);
          return chunks.length > 0;
        },
        event: (e) => {
          side.events.push(e);
          if (e.type === 'end-transport') send('eof');
          if (e.type === 'closed' && !side.ended) {
            side.ended = true;
            for (const chunk of engine.pollTransmit(this.now)) send(chunk);
            send('eof');
          }
        },
      },
      { name: 'Pair' },
    );
    side.driver.onTimer = () => {
      engine.handleTimeout(this.now);
      this.pump();
    };
    return side;
  }

  /** Move bytes both ways until nothing moves; collect events. */
  pump(): void {
    for (let rounds = 0; rounds < 10_000; rounds++) {
      let moved = 0;
      for (const [from, to] of [
        [this.client, this.server],
        [this.server, this.client],
      ] as const) {
        from.driver.pump();
        const out = from.outbox.splice(0);
        for (const item of out) {
          moved++;
          if (!to.driver.active) continue;
          if (item === 'eof') to.engine.receiveEnd(this.now);
          else to.engine.receive(this.now, item);
        }
        if (out.length > 0) to.driver.pump();
      }
      if (moved === 0) return;
    }
    throw new Error('pump did not settle');
  }

  /** Advance time to `t`, firing deadlines in order. */
  advanceTo(t: number): void {
    this.pump();
    this.clock.advanceTo(t);
    this.pump();
  }

  eventsOf(side: Side, type: EngineEvent['type']): EngineEvent[] {
    return side.events.filter((e) => e.type === type);
  }
}
