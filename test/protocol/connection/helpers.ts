/** Shared bits of the unit tests of the engine's parts. */
import { expect } from 'chai';
import { HeartwireError } from '../../../src/protocol/errors.js';
import { resolveSettings } from '../../../src/protocol/connection/settings.js';
import type { Settings } from '../../../src/protocol/connection/settings.js';
import type { EngineEvent, EngineOptions, Role } from '../../../src/protocol/types.js';
import { FrameDecoder } from '../../../src/protocol/codec/decode.js';
import type { Engine } from '../../../src/protocol/engine.js';
import type { ControlFrame } from '../../../src/protocol/frames.js';
import { ControlFrames } from '../../../src/protocol/connection/control.js';
import { Deadlines } from '../../../src/protocol/connection/deadlines.js';
import { Handshake } from '../../../src/protocol/connection/handshake.js';
import { Lifecycle } from '../../../src/protocol/connection/lifecycle.js';
import { Liveness } from '../../../src/protocol/connection/liveness.js';
import { Receiver } from '../../../src/protocol/connection/receive.js';
import { ReceiveWindow } from '../../../src/protocol/connection/receive-window.js';
import { Ring } from '../../../src/protocol/connection/ring.js';
import { Sender } from '../../../src/protocol/connection/send.js';
import { StateMachine } from '../../../src/protocol/connection/state.js';
import { Stats } from '../../../src/protocol/connection/stats.js';
import { Termination } from '../../../src/protocol/connection/termination.js';
import { Timers } from '../../../src/protocol/connection/timers.js';
import { Transmitter } from '../../../src/protocol/connection/transmit.js';

export function settings(role: Role = 'client', options: Partial<EngineOptions> = {}): Settings {
  return resolveSettings({ role, seed: 1, ...options });
}

/** The `code` of the HeartwireError `run` throws. */
export function thrownCode(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(HeartwireError);
    return (error as HeartwireError).code;
  }
  expect.fail('expected a HeartwireError');
}

/** Every part of one connection, wired as `Engine`'s constructor wires them. */
export interface Wired {
  s: Settings;
  machine: StateMachine;
  timers: Timers;
  events: Ring<EngineEvent>;
  controlQueue: Ring<Uint8Array>;
  decoder: FrameDecoder;
  handshake: Handshake;
  live: Liveness;
  send: Sender;
  w: ReceiveWindow;
  r: Receiver;
  t: Termination;
  life: Lifecycle;
  control: ControlFrames;
  transmit: Transmitter;
  deadlines: Deadlines;
  stats: Stats;
}

export function wired(role: Role = 'client', options: Partial<EngineOptions> = {}): Wired {
  const s = settings(role, options);
  const parts = { s } as Wired;
  const machine = (parts.machine = new StateMachine(role, (from, to) => parts.life.moved(from, to)));
  const timers = (parts.timers = new Timers());
  const events = (parts.events = new Ring<EngineEvent>());
  const controlQueue = (parts.controlQueue = new Ring<Uint8Array>());
  const decoder = (parts.decoder = new FrameDecoder({
    expectPreamble: false,
    maxDataPayload: s.maxFramePayload,
  }));
  const handshake = (parts.handshake = new Handshake(s, controlQueue));
  const live = (parts.live = new Liveness(s, timers, events));
  const send = (parts.send = new Sender(s, timers, events));
  const w = (parts.w = new ReceiveWindow(s, timers, live, decoder, () => {}));
  const engine = {
    onControl: (now: number, f: ControlFrame) => parts.control.onControl(now, f),
  } as unknown as Engine;
  const r = (parts.r = new Receiver(s, machine, w, decoder, events, engine));
  const t = (parts.t = new Termination(s, machine, send, r, w, timers, controlQueue, events));
  const life = (parts.life = new Lifecycle(
    s,
    machine,
    decoder,
    handshake,
    live,
    send,
    w,
    r,
    t,
    timers,
    controlQueue,
    events,
  ));
  parts.control = new ControlFrames(s, machine, handshake, live, send, t, life);
  parts.transmit = new Transmitter(s, machine, handshake, live, send, w, r, t, life, controlQueue, events);
  parts.deadlines = new Deadlines(machine, timers, live, send, w, t, life);
  parts.stats = new Stats(machine, live, send, w, r, parts.transmit);
  return parts;
}

/** Open `p` as if the handshake agreed (peer credit 1 MiB, frames of 1 KiB). */
export function openWired(p: Wired, now = 0): void {
  const negotiated = {
    version: 1,
    extensions: [],
    applicationProtocol: '',
    localIdleTimeoutMs: 20_000,
    peerIdleTimeoutMs: 20_000,
    heartbeatIntervalMs: 6_667,
    peerMaxFramePayload: 1024,
    peerMaxMessageBytes: 1 << 20,
    alternatives: [],
  };
  p.handshake.negotiated = negotiated;
  p.life.opened(now, { negotiated, peerInitialCredit: 1 << 20, peerSendQueueLimit: undefined });
}

/** Every event queued in `events`, removing them. */
export function drain(events: Ring<EngineEvent>): EngineEvent[] {
  const out: EngineEvent[] = [];
  for (let e = events.shift(); e !== undefined; e = events.shift()) out.push(e);
  return out;
}
