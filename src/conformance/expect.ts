/**
 * Helpers shared by the cases: expect an ERROR with a code, expect the connection to stay
 * usable, describe what happened.
 * @module
 */
import { FrameType } from '../protocol/constants.js';
import { WireErrorCode } from '../protocol/errors.js';
import type { WireErrorName } from '../protocol/errors.js';
import type { ClientPeer } from './client-peer.js';
import { codeName, frameName, type WirePeer } from './peer.js';
import type { CaseContext, Outcome } from './types.js';
import { CaseFailure } from './types.js';

export const pass = (expected: string, seen: string): Outcome => ({ status: 'pass', expected, seen });
export const fail = (expected: string, seen: string): Outcome => ({ status: 'fail', expected, seen });
export const info = (expected: string, seen: string): Outcome => ({ status: 'info', expected, seen });

/** What the peer did so far, in a few words: frames received, error, end. */
export function describe(peer: WirePeer, from = 0): string {
  const parts: string[] = [];
  const frames = peer.received.slice(from).map((r) => frameName(r.frame));
  if (frames.length > 0) {
    const shown = frames.length > 6 ? [...frames.slice(0, 3), '…', ...frames.slice(-2)] : frames;
    parts.push(`frames ${shown.join(', ')}`);
  }
  if (peer.error !== undefined)
    parts.push(`ERROR ${codeName(peer.error.code)} ("${peer.error.message.slice(0, 80)}")`);
  if (peer.bytesReceived === 0) parts.push('no bytes');
  if (peer.eofAt !== undefined) parts.push(`transport ended at ${Math.round(peer.eofAt)} ms`);
  else if (peer.closedAt !== undefined) parts.push(`transport closed at ${Math.round(peer.closedAt)} ms`);
  else if (peer.socketError !== undefined) parts.push(`socket error ${peer.socketError.message}`);
  else parts.push('connection still open');
  return parts.join('; ');
}

/**
 * Waits for an ERROR with one of `codes` followed by the end of the transport (SPEC.md §11: a
 * side that detects an error sends ERROR, then closes the transport without waiting).
 */
export async function expectError(
  context: { options: { timeoutMs: number } },
  peer: WirePeer,
  codes: WireErrorName[],
  options: { within?: number; noErrorFrame?: 'allowed' | 'after-close-ack' } = {},
): Promise<Outcome> {
  const within = options.within ?? context.options.timeoutMs;
  const expected = `ERROR ${codes.join(' or ')}, then the transport closed`;
  const settled = await peer.until(() => (peer.error !== undefined || peer.ended ? true : undefined), within);
  if (settled === undefined) return fail(expected, `nothing within ${within} ms: ${describe(peer)}`);
  if (peer.welcome === undefined && peer.find((r) => r.frame.type === FrameType.WELCOME) !== undefined) {
    return fail(expected, `the handshake completed: ${describe(peer)}`);
  }
  if (peer.error === undefined) {
    // The transport ended first; an ERROR may still be in the bytes that arrived with it.
    await peer.sleep(20);
  }
  if (peer.error === undefined) {
    if (options.noErrorFrame === 'allowed')
      return pass(expected, `transport closed without ERROR (allowed here)`);
    if (options.noErrorFrame === 'after-close-ack' && (peer as ClientPeer).closeAckAt !== undefined) {
      return pass(expected, 'CLOSE_ACK, then the transport closed (no ERROR is sent after CLOSE_ACK)');
    }
    return fail(expected, `transport closed without an ERROR frame: ${describe(peer)}`);
  }
  const name = codeName(peer.error.code);
  if (!codes.some((code) => WireErrorCode[code] === peer.error!.code)) {
    return fail(expected, `ERROR ${name} ("${peer.error.message.slice(0, 100)}")`);
  }
  const ended = await peer.waitEnded(Math.min(2000, context.options.timeoutMs));
  if (!ended)
    return fail(expected, `ERROR ${name}, but the transport stayed open (§11: close without waiting)`);
  return pass(expected, `ERROR ${name}, transport closed`);
}

/**
 * Checks that the connection is still healthy: no ERROR, then CLOSE → CLOSE_ACK → our FIN →
 * the server closes. `delivered` is the number of our messages the CLOSE_ACK must report.
 */
export async function expectAlive(context: CaseContext, peer: ClientPeer, what: string): Promise<Outcome> {
  const expected = `${what}; the connection stays usable (CLOSE → CLOSE_ACK → clean close)`;
  await peer.sleep(Math.min(200, context.options.timeoutMs));
  if (peer.error !== undefined || peer.ended) return fail(expected, describe(peer));
  peer.sendClose();
  const ack = await peer.until(
    () => (peer.closeAckAt !== undefined ? true : peer.error !== undefined || peer.ended ? false : undefined),
    context.options.timeoutMs,
  );
  if (ack !== true) return fail(expected, `no CLOSE_ACK after CLOSE: ${describe(peer)}`);
  const closed = await peer.waitEnded(context.options.timeoutMs);
  if (!closed) return fail(expected, 'CLOSE_ACK, but the server did not close after our FIN (§9.1 rule 4)');
  return pass(expected, `CLOSE_ACK (${peer.sentMessages} delivered), clean close`);
}

/** Ends the case with `outcome` (from inside helpers). */
export function stop(outcome: Outcome): never {
  throw new CaseFailure(outcome);
}
