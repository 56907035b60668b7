/**
 * The receiving side of a connection: the decoder's one sink (DATA frames into messages, control
 * frames to the engine, which hands them to `control.ts`), the inbox of messages received
 * complete, the assembly of messages that span frames or chunks, and the application's reads
 * (take, release, discard) with the counts of SPEC.md §9.4. Credit is the receive window's (`receive-window.ts`).
 * @module
 */
import { dataFrameCost } from '../codec/wire.js';
import type { FrameDecoder, FrameSink } from '../codec/decode.js';
import { FRAME_HEADER_SIZE } from '../constants.js';
import { FlowControlError, ProtocolError } from '../errors.js';
import type { ControlFrame } from '../frames.js';
import type { EngineEvent } from '../types.js';
import type { Engine } from '../engine.js';
import type { ReceiveWindow } from './receive-window.js';
import { Ring } from './ring.js';
import type { Settings } from './settings.js';
import type { StateMachine } from './state.js';

/** Incomplete messages are assembled in blocks of this size (fragments below a quarter of it are packed). */
const PARTIAL_BLOCK_SIZE = 16 * 1024;
/**
 * Received messages up to this size are copied out of the read chunk; larger ones are views of it
 * (measured: a view saves 15 % of the receive path at 64 B). A chunk of frames this small is less
 * than 3/4 DATA (`n / (n + 6) < 3/4` for `n < 18`), so views of it would be copied by the unpin
 * rule anyway.
 */
const COPY_RECEIVED_MAX = 3 * FRAME_HEADER_SIZE - 1;

/** Assembled messages from this size on come from the `allocate` option (see `storage`). */
const ALLOCATE_MIN = 4096;

const READABLE: EngineEvent = { type: 'readable' };
/** `chunkBuffer` between chunks. */
const NO_BUFFER = new ArrayBuffer(0);

export class Receiver implements FrameSink {
  /** Current time of the call being processed (frames carry no time of their own). */
  now = 0;
  /** DATA frames are accepted in the current state: the state row's, cached. */
  private dataAllowed = false;
  /** `onMessage` may queue a whole message: DATA accepted, and no message incomplete. */
  private wholeAllowed = false;
  /** Messages received complete, waiting for the application, each with its credit cost as weight. */
  readonly inbox = new Ring<Uint8Array>(true);
  /**
   * Messages handed out by `take()` and not yet consumed, in delivery order: each one's credit
   * cost, or `-1 - cost` once released (numbers, not objects: no allocation per message).
   */
  readonly taken = new Ring<number>();
  private inboxWasEmpty = true;
  /** Messages received complete. */
  receivedCount = 0;
  /** Messages handed to the application (take/read). */
  deliveredCount = 0;
  /** `discardUnread()` was called: messages not taken are dropped as they arrive. */
  discarding = false;
  /** Messages received complete and dropped unread by `discardUnread()`. */
  discardedCount = 0;
  /** Pieces of the incomplete message (see `appendPartial`). */
  private partial: Uint8Array[] = [];
  /** Block being filled with small fragments of the incomplete message. */
  private partialBlock: Uint8Array | undefined;
  private partialBlockFill = 0;
  /** Of the chunk being decoded: its DATA bytes, and how many messages and pieces are views of it. */
  private chunkDataBytes = 0;
  private chunkViews = 0;
  /**
   * The chunk being decoded, its buffer and offset, read once per chunk: reading `buffer` is a
   * call into the runtime, as much as a third of a small message's view. Cleared after the chunk,
   * so that an idle connection keeps no read buffer alive.
   */
  private chunk: Uint8Array | undefined;
  private chunkBuffer: ArrayBufferLike = NO_BUFFER;
  private chunkOffset = 0;
  /** The one-frame message being assembled (its frame spans chunks), and the bytes in it so far. */
  private assembly: Uint8Array | undefined;
  private assemblyFill = 0;
  /** Messages queued by `onMessage` whose accounting `settleMessages` has not done yet. */
  private unsettledCount = 0;
  private unsettledCost = 0;

  constructor(
    private readonly settings: Settings,
    private readonly machine: StateMachine,
    private readonly window: ReceiveWindow,
    private readonly decoder: FrameDecoder,
    private readonly events: Ring<EngineEvent>,
    private readonly engine: Engine,
  ) {}

  /**
   * Decode a chunk from the transport. Returns true when messages were dropped unread
   * (`discardUnread`), which may advance the termination. Throws what the decoder or a frame
   * handler throws (after settling the messages decoded before).
   */
  receiveChunk(bytes: Uint8Array): boolean {
    this.chunkDataBytes = 0;
    this.chunkViews = 0;
    // The application cannot read while we decode: messages from this chunk are pushed after these.
    const inboxBefore = this.inbox.length;
    this.chunk = bytes;
    this.chunkBuffer = bytes.buffer;
    this.chunkOffset = bytes.byteOffset;
    try {
      this.decoder.push(bytes, this);
    } finally {
      this.chunk = undefined;
      this.chunkBuffer = NO_BUFFER;
      this.settleMessages();
    }
    const dropped = this.discarding && this.inbox.length > 0 && this.dropInbox();
    if (this.chunkViews > 0 && this.chunkDataBytes * 4 < bytes.length * 3) {
      this.unpinChunk(bytes.buffer, inboxBefore);
    }
    return dropped;
  }

  /**
   * @internal A whole message in one frame from the decoder (see {@link FrameSink.onMessage}),
   * the per-message fast path: queue it; its credit, count and `readable` event are settled once
   * per chunk, or before the next frame of another kind (`settleMessages`).
   */
  onMessage(source: Uint8Array, start: number, stop: number, cost: number): void {
    if (!this.wholeAllowed) {
      // Not open for DATA, or the frame ends a multi-frame message: the general path decides.
      this.decoder.dataCredit += cost;
      this.onData(source, start, stop, stop - start, true, true, true);
      return;
    }
    this.queueWhole(source, start, stop, cost);
    this.unsettledCount++;
    this.unsettledCost += cost;
  }

  /** The state moved: whether DATA is accepted. */
  setDataAllowed(allowed: boolean): void {
    this.dataAllowed = allowed;
    this.wholeAllowed = allowed && this.window.partialCost === 0;
  }

  /** @internal Control frame from the decoder: to the engine, after the messages before it. */
  onControl(frame: ControlFrame): void {
    this.settleMessages();
    this.engine.onControl(this.now, frame);
  }

  /**
   * Queue a whole message inside the chunk being decoded: a view of the chunk, which the
   * transport never reuses (a tiny one is copied, see COPY_RECEIVED_MAX).
   */
  private queueWhole(source: Uint8Array, start: number, stop: number, cost: number): void {
    const length = stop - start;
    if (length <= COPY_RECEIVED_MAX) {
      this.inbox.push(source.slice(start, stop), cost);
    } else {
      // The constructor, not subarray(): no species lookup, about half the cost per message.
      const view =
        source === this.chunk
          ? new Uint8Array(this.chunkBuffer, this.chunkOffset + start, length)
          : new Uint8Array(source.buffer, source.byteOffset + start, length);
      this.inbox.push(view, cost);
      this.chunkViews++;
    }
    this.chunkDataBytes += length;
  }

  /** Account the messages `onMessage` queued: credit received, count, `readable`. */
  private settleMessages(): void {
    const count = this.unsettledCount;
    if (count === 0) return;
    this.unsettledCount = 0;
    this.window.receivedCredit += this.unsettledCost; // the decoder has taken it off its dataCredit already
    this.unsettledCost = 0;
    this.window.lastDataAt = this.now;
    this.receivedCount += count - 1;
    this.messageReceived();
  }

  /** @internal DATA frame bytes from the decoder (see {@link FrameSink.onData}). */
  onData(
    source: Uint8Array,
    start: number,
    stop: number,
    frameLength: number,
    first: boolean,
    last: boolean,
    end: boolean,
  ): void {
    this.settleMessages();
    const w = this.window;
    if (first) {
      if (!this.dataAllowed) {
        if (this.machine.state === 'closed') return; // an ERROR earlier in the same chunk closed us
        throw new ProtocolError('PROTOCOL_ERROR', `DATA not allowed in state ${this.machine.state}`);
      }
      // The decoder checked the header against the credit; the whole frame is accounted now.
      const cost = dataFrameCost(frameLength, end);
      const received = w.receivedCredit + cost;
      if (received > w.grantedLimit) {
        throw new FlowControlError(
          `peer sent ${received} credit bytes beyond the limit of ${w.grantedLimit}`,
        );
      }
      w.receivedCredit = received;
      this.decoder.dataCredit = w.grantedLimit - received;
      w.lastDataAt = this.now;
      if (end && w.partialCost === 0) {
        if (frameLength > this.settings.maxMessageBytes) {
          throw new ProtocolError(
            'MESSAGE_TOO_LARGE',
            `message of ${frameLength} bytes exceeds this side's (the receiver's) maxMessageSize of ${this.settings.maxMessageBytes} bytes`,
          );
        }
        if (last) {
          // A whole message in one frame inside one chunk whose header came in the chunk before.
          this.queueWhole(source, start, stop, cost);
          this.messageReceived();
          return;
        }
        // A one-frame message spanning chunks: assembled in a buffer of its exact size.
        const message = this.storage(frameLength);
        message.set(source.subarray(start, stop));
        this.chunkDataBytes += stop - start;
        this.assembly = message;
        this.assemblyFill = stop - start;
        w.startPinWatch(this.now);
        w.partialBytes = frameLength;
        w.partialCost = cost;
        w.frameInProgress = true;
        this.wholeAllowed = false;
        return;
      }
      if (w.partialCost === 0) w.startPinWatch(this.now);
      w.partialBytes += frameLength;
      w.partialCost += cost;
      this.wholeAllowed = false;
      if (w.partialBytes > this.settings.maxMessageBytes) {
        throw new ProtocolError(
          'MESSAGE_TOO_LARGE',
          `message of ${end ? '' : 'at least '}${w.partialBytes} bytes exceeds this side's (the receiver's) maxMessageSize of ${this.settings.maxMessageBytes} bytes`,
        );
      }
    } else if (this.machine.state === 'closed') {
      return;
    } else if (this.assembly !== undefined) {
      w.lastDataAt = this.now;
      this.assembly.set(source.subarray(start, stop), this.assemblyFill);
      this.chunkDataBytes += stop - start;
      this.assemblyFill += stop - start;
      if (!last) return;
      const message = this.assembly;
      this.assembly = undefined;
      w.frameInProgress = false;
      this.partialMessageReceived(message);
      return;
    }
    if (!first) w.lastDataAt = this.now;
    this.appendPartial(source, start, stop);
    if (!last) {
      w.frameInProgress = true;
      return;
    }
    w.frameInProgress = false;
    if (!end) {
      w.ensurePartialRoom(this.now);
      return;
    }
    this.partialMessageReceived(this.takePartial());
  }

  /**
   * The chunk just decoded was mostly not DATA (control frames): copy the messages and pieces
   * that are views of it, so that a peer cannot make a few small messages pin large chunks of
   * other bytes. Chunks kept by views are then at least 3/4 DATA (docs/IMPLEMENTATION.md, "Memory").
   */
  private unpinChunk(buffer: ArrayBufferLike, inboxBefore: number): void {
    const inbox = this.inbox;
    for (let i = Math.max(0, inboxBefore); i < inbox.length; i++) {
      const payload = inbox.at(i)!;
      if (payload.buffer === buffer) inbox.set(i, payload.slice());
    }
    const parts = this.partial;
    for (let i = 0; i < parts.length; i++) {
      if (parts[i]!.buffer === buffer) parts[i] = parts[i]!.slice();
    }
  }

  /**
   * A message that spanned chunks or frames completed: queue it, and remember its cost for
   * window tuning (large messages, decaying).
   */
  private partialMessageReceived(message: Uint8Array): void {
    const w = this.window;
    const cost = w.partialCost;
    w.largeMessageCost = Math.max(cost, w.largeMessageCost * 0.875);
    this.inbox.push(message, cost);
    w.partialBytes = 0;
    w.partialCost = 0;
    this.wholeAllowed = this.dataAllowed;
    w.stopPinWatch();
    this.messageReceived();
  }

  private messageReceived(): void {
    this.receivedCount++;
    if (this.inboxWasEmpty) {
      this.inboxWasEmpty = false;
      this.events.push(READABLE);
    }
  }

  /**
   * Keep a piece of an incomplete message. Large pieces are kept as views of the chunk (the one
   * copy is made when the message completes); small pieces are packed into blocks, so a peer
   * that splits a message into tiny frames or tiny segments cannot make per-piece overhead
   * exceed the credit it spent (docs/IMPLEMENTATION.md, "Memory").
   */
  private appendPartial(source: Uint8Array, start: number, stop: number): void {
    const length = stop - start;
    if (length === 0) return;
    this.chunkDataBytes += length;
    if (length >= PARTIAL_BLOCK_SIZE / 4) {
      this.partial.push(source.subarray(start, stop));
      this.chunkViews++;
      this.partialBlock = undefined;
      return;
    }
    let block = this.partialBlock;
    if (block === undefined || this.partialBlockFill + length > block.length) {
      block = new Uint8Array(PARTIAL_BLOCK_SIZE);
      this.partialBlock = block;
      this.partialBlockFill = 0;
      this.partial.push(block.subarray(0, 0));
    }
    block.set(source.subarray(start, stop), this.partialBlockFill);
    this.partialBlockFill += length;
    this.partial[this.partial.length - 1] = block.subarray(0, this.partialBlockFill);
  }

  /**
   * Storage for a message assembled from pieces, which fill all of it: large ones from the
   * `allocate` option (not zeroed), small ones as V8 allocates them best.
   */
  private storage(size: number): Uint8Array {
    return size >= ALLOCATE_MIN ? this.settings.allocate(size) : new Uint8Array(size);
  }

  /** Assemble the pieces of the message that just completed (one copy). */
  private takePartial(): Uint8Array {
    const parts = this.partial;
    const block = this.partialBlock;
    this.partial = [];
    this.partialBlock = undefined;
    if (parts.length === 1) {
      const only = parts[0]!;
      // A large piece is a view of a chunk: keep it. Pieces packed in a block are copied out, so
      // that the message does not pin the whole block.
      if (only.length >= PARTIAL_BLOCK_SIZE / 4 && only.buffer !== block?.buffer) return only;
      const copy = this.storage(only.length);
      copy.set(only);
      return copy;
    }
    const message = this.storage(this.window.partialBytes);
    let offset = 0;
    for (const part of parts) {
      message.set(part, offset);
      offset += part.length;
    }
    return message;
  }

  // ------------------------------------------------------------------ the application's reads

  /** See `Engine.read`. */
  read(now: number): Uint8Array | undefined {
    if (this.taken.length > 0) {
      // Messages taken earlier are still out: keep the release order through take/release.
      const payload = this.take();
      if (payload !== undefined) this.release(now, this.deliveredCount);
      return payload;
    }
    // Fast path: take and release at once, without bookkeeping objects.
    const inbox = this.inbox;
    const payload = inbox.shift();
    if (payload === undefined) return undefined;
    if (inbox.length === 0) this.inboxWasEmpty = true;
    this.deliveredCount++;
    const w = this.window;
    w.consumedCount++;
    w.releasedCredit += inbox.shiftedWeight;
    if (w.partialCost > 0 && !w.frameInProgress) w.ensurePartialRoom(now);
    else if (w.grantable() - w.grantedLimit >= w.window / 4) w.maybeGrantCredit(now);
    else if (w.reportStepReached) w.reportConsumption(inbox.length === 0 && this.taken.length === 0);
    if (w.overReserved) w.returnReservation(this.machine.state === 'closed');
    return payload;
  }

  /** See `Engine.takePayload`. */
  take(): Uint8Array | undefined {
    const payload = this.inbox.shift();
    if (payload === undefined) return undefined;
    this.deliveredCount++;
    this.taken.push(this.inbox.shiftedWeight);
    if (this.inbox.length === 0) this.inboxWasEmpty = true;
    return payload;
  }

  /** See `Engine.release`. Returns false when `seq` was not taken or is released already. */
  release(now: number, seq: number): boolean {
    const w = this.window;
    const index = seq - w.consumedCount - 1;
    const cost = index >= 0 ? this.taken.at(index) : undefined;
    if (cost === undefined || cost < 0) return false;
    this.taken.set(index, -1 - cost);
    // Credit returns in message order: the released prefix is consumed.
    for (let head = this.taken.peek(); head !== undefined && head < 0; head = this.taken.peek()) {
      this.taken.shift();
      w.consumedCount++;
      w.releasedCredit += -1 - head;
    }
    w.afterRelease(now);
    if (w.reportStepReached) w.reportConsumption(this.inbox.length === 0 && this.taken.length === 0);
    if (w.overReserved) w.returnReservation(this.machine.state === 'closed');
    return true;
  }

  /**
   * Drop the inbox (see `Engine.discardUnread`): credit released, nothing counted consumed.
   * Returns whether anything was dropped.
   */
  dropInbox(): boolean {
    const w = this.window;
    let count = 0;
    for (let payload = this.inbox.shift(); payload !== undefined; payload = this.inbox.shift()) {
      w.releasedCredit += this.inbox.shiftedWeight;
      count++;
    }
    if (count === 0) return false;
    this.inboxWasEmpty = true;
    this.discardedCount += count;
    w.afterRelease(this.now);
    if (w.overReserved) w.returnReservation(this.machine.state === 'closed');
    return true;
  }

  /** Nothing received is held for the application: inbox empty, every message taken released. */
  get allConsumed(): boolean {
    return this.inbox.length === 0 && this.taken.length === 0;
  }

  /** The connection closed: everything not handed to the application is discarded (SPEC.md §9.4). */
  close(): void {
    this.inbox.clear();
    this.assembly = undefined;
    this.partial = [];
    this.partialBlock = undefined;
  }
}
