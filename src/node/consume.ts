/**
 * The consumers of a {@link Connection}: its async iterator (`for await`) and `handle()`'s lanes.
 * Both take messages with the connection's `read()` / the engine's `takePayload()` and wait on its
 * `readers`; the connection counts them (`consumers`) for `end()`'s `unread: 'discard'`.
 * @module
 */
import PQueue from 'p-queue';
import { HandlerError, UsageError } from '../protocol/errors.js';
import type { Connection } from './connection.js';
import type { HandleOptions } from './connection-types.js';

/**
 * The iterator of `for await (const msg of conn)`. While messages are ready, `next()` hands them
 * out at once, as already resolved promises, without a generator or a wait for the socket.
 */
export function iterate(conn: Connection): AsyncIterableIterator<Uint8Array> {
  // Not started, running (a consumer from the first `next()` on, as a generator's body), or done.
  let state: 'new' | 'running' | 'done' = 'new';
  const stop = (): void => {
    if (state === 'running') conn.consumerStopped();
    state = 'done';
  };
  const end = (): Promise<IteratorResult<Uint8Array, undefined>> => {
    stop();
    return Promise.resolve(DONE);
  };
  const iterator: AsyncIterableIterator<Uint8Array> = {
    // A ready message comes as an already resolved promise: no generator, no wait for the socket.
    next: () => {
      if (state !== 'running') {
        if (state === 'done') return Promise.resolve(DONE);
        state = 'running';
        conn.consumers++;
      }
      const message = conn.read();
      if (message !== undefined) return Promise.resolve({ value: message, done: false });
      return nextMessage(conn).then(
        (next) => (next === undefined ? end() : { value: next, done: false }),
        (error: unknown) => {
          stop();
          throw error;
        },
      );
    },
    // `break` out of `for await`: later calls to `next()` report the end.
    return: end,
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

/** The iterator's slow path: wait until a message is ready or the stream has ended. */
async function nextMessage(conn: Connection): Promise<Uint8Array | undefined> {
  for (;;) {
    const message = conn.read();
    if (message !== undefined) return message;
    if (conn.streamEnded()) {
      conn.endOfStream();
      return undefined;
    }
    await new Promise<void>((resolve) => conn.readers.push(resolve));
  }
}

/** `handle()`, once its arguments are checked. */
export async function runHandlers(
  conn: Connection,
  handler: (message: Uint8Array) => unknown,
  options: HandleOptions,
): Promise<void> {
  if (conn.handling)
    throw new UsageError('HANDLE_ALREADY_RUNNING', 'handle() is already running on this connection');
  conn.handling = true;
  conn.consumers++;
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
  const queue = concurrency > 1 ? new PQueue({ concurrency }) : undefined;
  const userOnError = options.onError;
  const fail = (error: unknown): void => {
    if (!conn.ownsCloseError(error)) conn.abort(new HandlerError('a handle() handler failed', error));
  };
  const onError =
    userOnError === undefined
      ? fail
      : (error: unknown, message: Uint8Array): void => {
          try {
            userOnError(error, message);
          } catch (thrown) {
            fail(thrown); // never an unhandled rejection from a lane
          }
        };
  // Lanes that found no message ready wait here (their `run`), and are resumed as messages come.
  const parked: (() => void)[] = [];
  const exits: (() => void)[] = [];
  let lanes = 0;
  const park = (run: () => void): void => {
    parked.push(run);
    if (parked.length === lanes && conn.streamEnded()) conn.wakeReaders();
  };
  const start = (): Promise<void> =>
    new Promise<void>((exit) => {
      exits.push(exit);
      lane(conn, handler, onError, park);
    });
  try {
    for (;;) {
      // Resume parked lanes, then start new ones, up to one per ready message; a lane takes
      // further messages itself.
      let ready = conn.engine.readableMessages;
      while (ready > 0 && parked.length > 0) {
        parked.pop()!();
        ready = Math.min(ready - 1, conn.engine.readableMessages);
      }
      while (ready > 0 && lanes < concurrency) {
        lanes++;
        if (queue === undefined) void start();
        else void queue.add(start);
        ready = Math.min(ready - 1, conn.engine.readableMessages);
      }
      if (parked.length === lanes && conn.streamEnded()) break;
      await new Promise<void>((resolve) => conn.readers.push(resolve));
    }
    for (const exit of exits) exit();
    if (queue !== undefined) await queue.onIdle();
    conn.endOfStream();
  } finally {
    conn.handling = false;
    conn.consumerStopped();
  }
}

/**
 * One lane of `handle()`: run handlers one after another while messages are ready, then `park`
 * (the lane's `run` is called again when more are ready). A handler's promise is followed with
 * two callbacks made once per lane, not per message; a handler that returns anything else has
 * settled when it returns.
 */
function lane(
  conn: Connection,
  handler: (message: Uint8Array) => unknown,
  onError: (error: unknown, message: Uint8Array) => void,
  park: (run: () => void) => void,
): void {
  const engine = conn.engine;
  let seq = 0;
  let payload: Uint8Array | undefined;
  const release = (t: number): void => {
    payload = undefined;
    engine.release(t, seq);
    // The credit (or the end of the termination) goes out with the next flush, once per batch.
    if (engine.mayTransmitAfterRead) conn.scheduleFlush();
  };
  const run = (): void => {
    for (;;) {
      payload = engine.takePayload(conn.lastNow);
      if (payload === undefined) return park(run);
      seq = engine.lastTakenSeq;
      let result: unknown;
      try {
        result = handler(payload);
      } catch (error) {
        onError(error, payload);
        release(conn.turnNow());
        continue;
      }
      if (isThenable(result)) {
        Promise.resolve(result).then(settled, failed);
        return;
      }
      release(conn.lastNow);
    }
  };
  const settled = (): void => {
    release(conn.turnNow());
    run();
  };
  const failed = (error: unknown): void => {
    onError(error, payload!);
    settled();
  };
  run();
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });
