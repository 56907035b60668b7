/**
 * Kernel safety net: TCP keepalive derived from the idle timeout (SPEC.md §8 is the real
 * detector; keepalive only reclaims sockets whose process stopped running heartwire).
 * @module
 */
import type { Socket } from 'node:net';

/**
 * Enable keepalive with an initial delay of `idleTimeout` (never below 1000 ms: libuv ignores
 * smaller values and silently keeps the 2-hour default). Node 20 cannot set the probe interval
 * and count, so the kernel gives up after about `delay + 10 × 1 s` on an idle socket.
 * @returns the delay applied, in ms (0 for a Unix domain socket: nothing to apply).
 */
export function applyKeepAlive(socket: Socket, idleTimeout: number | undefined): number {
  // TCP only: a Unix domain socket has neither keepalive nor Nagle (and no remote port).
  if (socket.remotePort === undefined) return 0;
  const delay = Math.max(1000, Math.round(idleTimeout ?? 20_000));
  socket.setKeepAlive(true, delay);
  socket.setNoDelay(true);
  return delay;
}
