/**
 * The transport side of a `Connection`: bytes in from the socket to the engine, bytes out from the
 * engine to the socket (bounded by the socket's buffer), the write-stall backlog reports, and the
 * socket's end after the connection's last frame (SPEC.md §11).
 * @module
 */
import type { Engine } from '../protocol/engine.js';
import type { CloseInfo } from '../protocol/types.js';
import type { Runtime, Transport } from './runtime.js';
import { WheelTimer } from './timer-wheel.js';

/**
 * After its last frame (an ERROR, or the end of a clean close) a connection half-closes the socket
 * and reads and discards what still arrives for at most this long and this many bytes before it
 * destroys the socket (SPEC.md §11): destroying a socket with unread input resets the connection,
 * and the reset can make the peer's kernel drop our ERROR before the peer has read it.
 */
const DRAIN_MAX_MS = 1000;
const DRAIN_MAX_BYTES = 1024 * 1024;
/** After a clean close the peer owes only its FIN: wait longer for it, with the same byte bound. */
const CLEAN_LINGER_MS = 5000;

/**
 * The engine's contact with the world: bytes between one socket and the engine, and the engine's
 * one timer. After each input (bytes, end, error, close, drain, the timer) it calls `service`.
 */
export class TransportLoop {
  /** The engine's one timer, in the process-wide coarse wheel (see timer-wheel.ts). */
  private readonly timer: WheelTimer;
  /** Bytes given to `socket.write()`, and of those, bytes the socket had flushed at the last report. */
  private bytesHandedOver = 0;
  private bytesFlushed = 0;
  /** The connection has closed: what still arrives is read and discarded. */
  private closed = false;
  /** Bytes read and discarded after the close, while draining (SPEC.md §11). */
  private drained = 0;

  constructor(
    private readonly socket: Transport,
    private readonly engine: Engine,
    private readonly runtime: Runtime,
    private readonly socketBufferTarget: number,
    service: () => void,
  ) {
    const now = (): number => runtime.now();
    this.timer = new WheelTimer(() => {
      engine.handleTimeout(now());
      service();
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Uint8Array) => {
      if (this.closed) {
        this.discard(chunk.length);
        return;
      }
      // A plain Uint8Array view: the decoder's subarray() calls then avoid Buffer's slower species path.
      engine.receive(now(), new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      service();
    });
    socket.on('end', () => {
      engine.receiveEnd(now());
      service();
    });
    socket.on('error', (error) => {
      engine.transportFailed(now(), error);
      service();
    });
    socket.on('close', () => {
      engine.transportFailed(now(), new Error('socket closed'));
      service();
    });
    // Node's Writable emits 'drain' before it calls back the writes that completed: serving at once
    // would take fresh batch buffers while the written ones are not back in the pool (up to 41 out
    // at once at 1 KiB, so the pool overflowed and the engine allocated); serve after the callbacks.
    socket.on('drain', () => runtime.nextTick(service));
  }

  /** Hand the socket what the engine has to send, up to the socket's buffer target. */
  transmit(t: number): void {
    const socket = this.socket;
    const engine = this.engine;
    if (socket.destroyed) {
      engine.pollTransmit(t, 0);
      return;
    }
    if (!engine.wantsToTransmit) return;
    const room = Math.max(0, this.socketBufferTarget - socket.writableLength);
    const chunks = engine.pollTransmit(t, room);
    if (chunks.length === 0) return;
    if (chunks.length > 1) socket.cork();
    for (const chunk of chunks) {
      // A batch buffer goes back to the engine for reuse once the socket has written it.
      if (engine.isRecyclable(chunk)) socket.write(chunk, () => engine.transmitted(chunk));
      else socket.write(chunk);
      this.bytesHandedOver += chunk.length;
    }
    if (chunks.length > 1) socket.uncork();
  }

  /**
   * Tell the engine's write-stall watchdog how many bytes the socket still holds. Progress is
   * measured as bytes the socket flushed since the last report, not as a smaller backlog: a busy
   * socket refilled to the same level after every flush is making progress.
   */
  reportBacklog(t: number): void {
    if (this.socket.destroyed) return;
    const backlog = this.socket.writableLength;
    const flushed = this.bytesHandedOver - backlog;
    if (flushed > this.bytesFlushed) {
      this.bytesFlushed = flushed;
      this.engine.transmitBacklog(t, 0);
    }
    this.engine.transmitBacklog(t, backlog);
  }

  /** Keep the timer at the engine's next deadline. */
  armTimer(): void {
    const deadline = this.engine.nextDeadline();
    const timer = this.timer;
    if (deadline === undefined) {
      if (timer.armed) this.runtime.wheel.cancel(timer);
      return;
    }
    // Moving a wheel timer is cheap (and a no-op within its bucket); a timer left to fire early
    // would cost a wake-up for nothing.
    if (timer.armed && timer.deadline === deadline) return;
    this.runtime.wheel.schedule(timer, deadline, this.engine.timerSlack);
  }

  /**
   * The connection closed: write what the engine still has (an ERROR frame), close the socket,
   * stop the timer.
   */
  close(info: CloseInfo, t: number): void {
    this.closed = true;
    this.closeSocket(info, t);
    this.runtime.wheel.cancel(this.timer);
  }

  private closeSocket(info: CloseInfo, t: number): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    for (const chunk of this.engine.pollTransmit(t, 0)) socket.write(chunk);
    if (info.clean || info.initiator !== 'transport' || info.error?.code === 'HEARTBEAT_TIMEOUT') {
      // Half-close after our last frame, then drain (see DRAIN_MAX_MS): give the peer a moment
      // to read that frame, but never wait on a dead path or read without bound.
      socket.end();
      const runtime = this.runtime;
      const linger = runtime.setTimeout(
        () => socket.destroy(),
        info.clean ? CLEAN_LINGER_MS : DRAIN_MAX_MS,
        true,
      );
      socket.once('close', () => runtime.clearTimeout(linger));
    } else {
      socket.destroy();
    }
  }

  private discard(bytes: number): void {
    this.drained += bytes;
    if (this.drained > DRAIN_MAX_BYTES && !this.socket.destroyed) this.socket.destroy();
  }
}
