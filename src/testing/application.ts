/**
 * The applications of a {@link SimulatedNetwork}: what runs on each engine's events, and what it
 * may do (read, take and release messages, send).
 * @module
 */
import type { EngineEvent, InboundMessage } from '../protocol/types.js';
import type { SimEngine } from './engine-driver.js';
import type { SendResult, Side, SimulatedNetwork } from './simnet.js';

/** What a {@link SimApplication} can do. Reads and takes are recorded in {@link SimSide.delivered}. */
export interface SimAppContext {
  readonly side: Side;
  readonly now: number;
  readonly engine: SimEngine;
  readonly network: SimulatedNetwork;
  /** True while the consumer is paused with {@link SimulatedNetwork.pauseConsumer}. */
  readonly paused: boolean;
  /** `engine.read(now)`, recorded. */
  read(): Uint8Array | undefined;
  /** `engine.take(now)`, recorded; give it back with {@link release}. */
  take(): InboundMessage | undefined;
  /** `engine.release(now, seq)`, recorded. */
  release(seq: number): void;
  /** Reads until no message is left; returns how many were read. */
  readAll(): number;
  /** Same as {@link SimulatedNetwork.send} for this side. */
  send(payload: Uint8Array): SendResult;
}

/**
 * A side's application: called for every engine event after the simulation has recorded and
 * handled it. When a paused consumer is resumed while messages may be waiting, it is called
 * once more with a `readable` event (not recorded in {@link SimSide.events}).
 */
export type SimApplication = (event: EngineEvent, app: SimAppContext) => void;

/** The built-in application: reads every message on `readable` unless the consumer is paused. */
export const defaultApplication: SimApplication = (event, app) => {
  if (event.type === 'readable' && !app.paused) app.readAll();
};
