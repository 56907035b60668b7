/**
 * `@chainsafe/libp2p-yamux` on a plain `net.Socket`, without the rest of libp2p (no
 * multistream-select, no encryption): a minimal `MessageStream` over the socket, modelled on
 * `@libp2p/tcp`'s connection class, plus the one Node 20 gap (`Promise.withResolvers`).
 * @module
 */
import type net from 'node:net';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { YamuxMuxerInit } from '@chainsafe/libp2p-yamux';

/** The muxer type `yamux()` creates. */
export type YamuxMuxer = ReturnType<ReturnType<ReturnType<typeof yamux>>['createStreamMuxer']>;
import type { AbortOptions, Logger } from '@libp2p/interface';
import { AbstractMessageStream } from '@libp2p/utils';
import type { SendResult } from '@libp2p/utils';

/** Node 20 lacks `Promise.withResolvers` (used by @libp2p/utils 7 and yamux 8): the standard shim. */
export function installWithResolversShim(): void {
  const P = Promise as unknown as { withResolvers?: unknown };
  if (typeof P.withResolvers === 'function') return;
  P.withResolvers = function withResolvers<T>(this: PromiseConstructor) {
    let resolve!: (value: T) => void;
    let reject!: (reason?: unknown) => void;
    const promise = new this<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

/** A logger that logs nothing. */
function silentLogger(): Logger {
  const log = (() => {}) as unknown as Logger;
  log.error = () => {};
  log.trace = () => {};
  log.enabled = false;
  (log as unknown as { newScope: () => Logger }).newScope = () => log;
  return log;
}

/** A `MessageStream` (what a stream muxer runs on) over a connected TCP socket. */
class SocketMessageStream extends AbstractMessageStream {
  constructor(
    private readonly socket: net.Socket,
    direction: 'inbound' | 'outbound',
  ) {
    super({ log: silentLogger(), direction });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.safeDispatchEvent('drain'));
    socket.on('error', (error) => this.abort(error));
    socket.once('end', () => this.onRemoteCloseWrite());
    socket.once('close', () => this.onTransportClosed());
  }

  sendData(data: Parameters<AbstractMessageStream['sendData']>[0]): SendResult {
    let sentBytes = 0;
    let canSendMore = true;
    for (const buf of data) {
      sentBytes += buf.byteLength;
      canSendMore = this.socket.write(buf);
      if (!canSendMore) break;
    }
    return { sentBytes, canSendMore };
  }

  sendReset(): void {
    this.socket.resetAndDestroy();
  }

  sendPause(): void {
    this.socket.pause();
  }

  sendResume(): void {
    this.socket.resume();
  }

  async close(_options?: AbortOptions): Promise<void> {
    this.socket.end();
  }
}

/** Create a yamux muxer over `socket` (`'outbound'` for the client side). */
export function yamuxOverSocket(
  socket: net.Socket,
  direction: 'inbound' | 'outbound',
  init: YamuxMuxerInit = {},
): YamuxMuxer {
  installWithResolversShim();
  const factory = yamux({ enableKeepAlive: false, ...init })();
  return factory.createStreamMuxer(new SocketMessageStream(socket, direction));
}
