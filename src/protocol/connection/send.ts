/**
 * The sending side of a connection: the one bounded send queue (which keeps every message until
 * the peer reports it consumed: the delivery report needs them), the peer's credit (S and P of
 * SPEC.md §7), fragmenting into DATA frames, the batch buffers frames are written into, the
 * credit-stall watch and the delivery report (SPEC.md §9.4).
 * @module
 */
import { dataFrameCost, putHeader } from '../codec/wire.js';
import { writeFrameHeader } from '../codec/encode.js';
import { FLAG_END, FRAME_HEADER_SIZE, FrameType, MAX_COUNTER, MIN_FRAME_PAYLOAD } from '../constants.js';
import { ProtocolError, UsageError } from '../errors.js';
import type { DeliveryReport, EngineEvent } from '../types.js';
import type { Ring } from './ring.js';
import { Ring as Queue } from './ring.js';
import { MIN_FRAGMENT } from './settings.js';
import type { Settings } from './settings.js';
import { Timer } from './timers.js';
import type { Timers } from './timers.js';

/** Payloads up to this size are copied into the batch buffer; larger ones are written as views. */
export const COPY_THRESHOLD = 2048;
/** Size of the scratch buffers that batch headers and small payloads. */
const BATCH_SIZE = 64 * 1024;
/**
 * Batch buffers written and ready for reuse (see `Engine.transmitted`), shared by the engines of
 * a process so that its memory stays bounded however many connections were once busy.
 */
const BATCH_POOL_MAX = 32;
const batchPool: Uint8Array[] = [];
/** A call expected to write at least this many bytes takes a full-size, recycled batch. */
const POOLED_BATCH_MIN = 4096;
/**
 * What a message counts in the send queue on top of its payload bytes (its share of the queue's
 * bookkeeping), so the queue's bound also bounds how many messages it holds (SPEC.md §9.4).
 */
export const SEND_QUEUE_MESSAGE_OVERHEAD = 64;

const WRITABLE: EngineEvent = { type: 'writable' };

function counterExhausted(): never {
  throw new UsageError(
    'LIMIT_REACHED',
    'the message counter reached 2^53 - 1 (SPEC.md §2): no more messages on this connection',
  );
}

export class Sender {
  /**
   * The send queue: messages `peerConsumed + 1` … `queuedCount`, oldest first, kept until the
   * peer reports them consumed (the delivery report needs the payloads of the others). One
   * queue, one bound: `outboxBytes` (payloads + SEND_QUEUE_MESSAGE_OVERHEAD each) is below
   * `maxSendQueueBytes` whenever a message is accepted.
   */
  readonly outbox = new Queue<Uint8Array>();
  /** What the messages in `outbox` count against `maxSendQueueBytes`. */
  outboxBytes = 0;
  /** State of the `pollTransmit` call under way: output, batch buffer, its unwritten start and fill. */
  private txOut: Uint8Array[] | undefined;
  private txBatch: Uint8Array | undefined;
  private txStart = 0;
  txPos = 0;
  private txEstimate = 0;
  /** Batch buffers out with the transport: chunks not yet reported written (see `transmitted`). */
  private readonly batchesOut = new WeakMap<ArrayBufferLike, number>();
  /** Payload bytes of the message at `sendIndex` already framed. */
  private sendOffset = 0;
  /** Index in `outbox` of the message being transmitted. */
  sendIndex = 0;
  /** Messages accepted (`delivery.queued`). */
  queuedCount = 0;
  /** Messages whose last frame was handed to the transport. */
  writtenCount = 0;
  /** Payload bytes queued and not yet framed. */
  queuedBytes = 0;
  /** The send queue reached its bound: emit `writable` once it is below it again. */
  private writableWanted = false;
  /** S: credit bytes sent. P: highest limit granted by the peer. */
  sentCredit = 0;
  peerLimit = 0;
  peerMaxFramePayload = MIN_FRAME_PAYLOAD;
  peerMaxMessageBytes = 0;
  /** The highest `Consumed Messages` the peer reported. */
  peerConsumed = 0;
  /** Set when the peer's final frame (CLOSE_ACK or ERROR) said how many messages it delivered. */
  peerDelivered: number | undefined;
  /** Since when the next frame has waited for the peer's credit (`undefined`: not blocked). */
  blockedSince: number | undefined;
  private stallReported = false;
  creditBlockedTotal = 0;
  /** The handshake completed: DATA may go out. */
  open = false;

  /** `maxSendQueueBytes`, at hand for the per-message path. */
  private readonly maxQueueBytes: number;

  constructor(
    private readonly settings: Settings,
    private readonly timers: Timers,
    private readonly events: Ring<EngineEvent>,
  ) {
    this.maxQueueBytes = settings.maxSendQueueBytes;
  }

  /** The handshake completed: the peer's initial credit and limits. */
  start(peerLimit: number, peerMaxFramePayload: number, peerMaxMessageBytes: number): void {
    this.peerLimit = peerLimit;
    this.peerMaxFramePayload = peerMaxFramePayload;
    this.peerMaxMessageBytes = peerMaxMessageBytes;
    this.open = true;
  }

  /** Queue a message (see `Engine.trySend`); false when the queue is at its bound. */
  queue(now: number, payload: Uint8Array): boolean {
    const max = this.maxQueueBytes;
    let bytes = this.outboxBytes;
    if (bytes >= max) {
      this.writableWanted = true;
      return false;
    }
    if (this.queuedCount >= MAX_COUNTER) counterExhausted();
    this.outbox.push(payload);
    this.queuedCount++;
    this.queuedBytes += payload.length;
    bytes += payload.length + SEND_QUEUE_MESSAGE_OVERHEAD;
    this.outboxBytes = bytes;
    if (bytes >= max) this.writableWanted = true;
    // Only a sender short of credit can become blocked by queuing more.
    if (this.blockedSince === undefined && this.creditAvailable() < dataFrameCost(1, true))
      this.updateBlocked(now);
    return true;
  }

  get queueFull(): boolean {
    return this.outboxBytes >= this.settings.maxSendQueueBytes;
  }

  /** Every queued message has been handed to the transport. */
  get allSent(): boolean {
    return this.sendIndex >= this.outbox.length;
  }

  /** DATA is waiting and the peer's credit lets some go out. */
  get hasDataToSend(): boolean {
    return this.open && this.sendIndex < this.outbox.length && this.creditAvailable() > 0;
  }

  creditAvailable(): number {
    return this.peerLimit - this.sentCredit;
  }

  /** Start a `pollTransmit` call writing into `out`, at most `maxDataBytes` of DATA. */
  begin(out: Uint8Array[], maxDataBytes: number, controlBytes: number): void {
    this.txOut = out;
    this.txBatch = undefined;
    this.txStart = 0;
    this.txPos = 0;
    // Size the batch to what this call can write at most, so a lone small frame does not allocate
    // (and pin, while the socket holds it) a whole BATCH_SIZE buffer.
    const pending = this.outbox.length - this.sendIndex;
    const averagePayload = pending === 0 ? 0 : this.queuedBytes / pending;
    this.txEstimate =
      controlBytes +
      Math.min(
        maxDataBytes,
        pending * (2 * FRAME_HEADER_SIZE + (averagePayload <= COPY_THRESHOLD ? averagePayload : 0)),
      );
  }

  /** End the `pollTransmit` call: the batch's last bytes go out; the credit-stall watch is updated. */
  end(now: number): void {
    this.flushBatch();
    this.txOut = undefined;
    this.txBatch = undefined;
    this.updateBlocked(now);
  }

  /** The batch buffer, with room for `bytes` more at `txPos` (a new buffer when it is full). */
  room(bytes: number): Uint8Array {
    let batch = this.txBatch;
    if (batch === undefined || this.txPos + bytes > batch.length) {
      this.flushBatch();
      const size = Math.max(Math.min(BATCH_SIZE, this.txEstimate), bytes);
      if (size >= POOLED_BATCH_MIN && size <= BATCH_SIZE) {
        // Full-size batches are recycled once the transport reports them written (`transmitted`).
        batch = batchPool.pop() ?? new Uint8Array(BATCH_SIZE);
        this.batchesOut.set(batch.buffer, 0);
      } else {
        batch = new Uint8Array(size);
      }
      this.txEstimate = BATCH_SIZE;
      this.txBatch = batch;
      this.txStart = 0;
      this.txPos = 0;
    }
    return batch;
  }

  /** Append the batch's unwritten bytes to the output. */
  private flushBatch(): void {
    const batch = this.txBatch;
    if (batch !== undefined && this.txPos > this.txStart) {
      this.txOut!.push(batch.subarray(this.txStart, this.txPos));
      this.txStart = this.txPos;
      const out = this.batchesOut.get(batch.buffer);
      if (out !== undefined) this.batchesOut.set(batch.buffer, out + 1);
    }
  }

  /** See `Engine.transmitted`. */
  transmitted(chunk: Uint8Array): void {
    const buffer = chunk.buffer;
    const out = this.batchesOut.get(buffer);
    if (out === undefined) return;
    if (out > 1) {
      this.batchesOut.set(buffer, out - 1);
      return;
    }
    this.batchesOut.delete(buffer);
    if (batchPool.length < BATCH_POOL_MAX) batchPool.push(new Uint8Array(buffer, 0, BATCH_SIZE));
  }

  isRecyclable(chunk: Uint8Array): boolean {
    return this.batchesOut.has(chunk.buffer);
  }

  /** DATA frames, within the peer's credit and `budget` DATA bytes (the last frame may pass it). */
  writeData(budget: number): void {
    const out = this.txOut!;
    const outbox = this.outbox;
    const smallMax = Math.min(COPY_THRESHOLD, this.peerMaxFramePayload);
    while (this.sendIndex < outbox.length && budget > 0) {
      if (this.sendOffset === 0) {
        // The common case: a run of small messages, each whole, copied into the batch behind its
        // header (the loop keeps its state in locals; fields are written back before room()).
        const first = this.sendIndex;
        const count = outbox.length;
        const limit = this.peerLimit;
        let index = first;
        let sent = this.sentCredit;
        let bytes = 0;
        // (typed explicitly: TypeScript would narrow the field to its assignment above)
        let target = this.txBatch as Uint8Array | undefined;
        let at = this.txPos;
        while (index < count && budget > 0) {
          const payload = outbox.at(index)!;
          const length = payload.length;
          const cost = dataFrameCost(length, true);
          if (length > smallMax || sent + cost > limit) break;
          const frameSize = FRAME_HEADER_SIZE + length;
          if (target === undefined || at + frameSize > target.length) {
            this.txPos = at;
            target = this.room(frameSize);
            at = this.txPos;
          }
          putHeader(target, at, length, FrameType.DATA, FLAG_END);
          if (length > 0) target.set(payload, at + FRAME_HEADER_SIZE);
          at += frameSize;
          sent += cost;
          bytes += length;
          budget -= frameSize;
          index++;
        }
        this.txPos = at;
        this.sentCredit = sent;
        this.queuedBytes -= bytes;
        this.writtenCount += index - first;
        this.sendIndex = index;
        if (index === count || budget <= 0) break;
      }
      const payload = outbox.at(this.sendIndex)!;
      const length = payload.length;
      const remaining = length - this.sendOffset;
      const credit = this.creditAvailable();
      const size = this.nextFrameSize(remaining, credit);
      if (size < 0) break;
      const end = size === remaining && dataFrameCost(size, true) <= credit;
      const target = this.room(FRAME_HEADER_SIZE + (size <= COPY_THRESHOLD ? size : 0));
      writeFrameHeader(target, this.txPos, size, FrameType.DATA, end ? FLAG_END : 0);
      this.txPos += FRAME_HEADER_SIZE;
      const chunk =
        this.sendOffset === 0 && size === length
          ? payload
          : payload.subarray(this.sendOffset, this.sendOffset + size);
      if (size <= COPY_THRESHOLD) {
        target.set(chunk, this.txPos);
        this.txPos += size;
      } else {
        this.flushBatch();
        out.push(chunk);
      }
      this.sendOffset += size;
      this.sentCredit += dataFrameCost(size, end);
      this.queuedBytes -= size;
      budget -= FRAME_HEADER_SIZE + size;
      if (end) {
        this.sendIndex++;
        this.sendOffset = 0;
        this.writtenCount++;
      }
    }
  }

  /**
   * Payload size of the next DATA frame of a message with `remaining` bytes left, or −1 when it
   * must wait. The frame finishes the message (END) when credit allows; otherwise it carries at
   * least `min(remaining, MIN_FRAGMENT)` bytes, so a message is never cut into tiny frames whose
   * headers would outgrow the receiver's window (SPEC.md §5.1, §7 rule 7).
   */
  nextFrameSize(remaining: number, credit: number): number {
    if (remaining <= this.peerMaxFramePayload && dataFrameCost(remaining, true) <= credit) return remaining;
    const size = Math.min(remaining, this.peerMaxFramePayload, credit - FRAME_HEADER_SIZE);
    return size > 0 && size >= Math.min(remaining, MIN_FRAGMENT) ? size : -1;
  }

  /**
   * Apply a credit limit and a consumed count from the peer: consumed messages leave the send
   * queue. Returns whether anything changed. Throws `PROTOCOL_ERROR` when the peer reports more
   * messages consumed than were written.
   */
  onCredit(now: number, limit: number, consumed: number): boolean {
    let changed = false;
    if (limit > this.peerLimit) {
      this.peerLimit = limit;
      changed = true;
      this.updateBlocked(now);
    }
    if (consumed > this.peerConsumed) {
      if (consumed > this.writtenCount) {
        throw new ProtocolError(
          'PROTOCOL_ERROR',
          `peer reports ${consumed} messages consumed of ${this.writtenCount} sent`,
        );
      }
      const count = consumed - this.peerConsumed;
      const outbox = this.outbox;
      let bytes = this.outboxBytes;
      for (let i = 0; i < count; i++) bytes -= outbox.at(i)!.length + SEND_QUEUE_MESSAGE_OVERHEAD;
      this.outboxBytes = bytes;
      outbox.discard(count);
      this.sendIndex -= count;
      this.peerConsumed = consumed;
      changed = true;
      if (this.writableWanted && bytes < this.settings.maxSendQueueBytes) {
        this.writableWanted = false;
        this.events.push(WRITABLE);
      }
    }
    return changed;
  }

  /** Start or end the credit-stall watch as the next frame waits for credit or not. */
  updateBlocked(now: number): void {
    const next = this.sendIndex < this.outbox.length ? this.outbox.at(this.sendIndex)! : undefined;
    const blocked =
      this.open &&
      next !== undefined &&
      this.nextFrameSize(next.length - this.sendOffset, this.creditAvailable()) < 0;
    if (blocked && this.blockedSince === undefined) {
      this.blockedSince = now;
      this.armStallTimers();
    } else if (!blocked && this.blockedSince !== undefined) {
      const blockedMs = now - this.blockedSince;
      this.creditBlockedTotal += blockedMs;
      this.blockedSince = undefined;
      this.armStallTimers();
      if (this.stallReported) {
        this.stallReported = false;
        this.events.push({ type: 'credit-resumed', blockedMs });
      }
    }
  }

  /** The credit-stall report timer expired: emit `credit-stall`, once per stall. */
  reportStall(now: number): void {
    this.stallReported = true;
    this.timers.stop(Timer.CREDIT_STALL_REPORT);
    this.events.push({ type: 'credit-stall', blockedMs: now - this.blockedSince! });
  }

  /** The connection closed: a stall under way ends (its time counts). */
  close(now: number): void {
    if (this.blockedSince !== undefined) {
      this.creditBlockedTotal += now - this.blockedSince;
      this.blockedSince = undefined;
      this.armStallTimers();
    }
  }

  /** Arm (or stop) the credit-stall deadlines for `blockedSince`. */
  private armStallTimers(): void {
    const since = this.blockedSince;
    const s = this.settings;
    this.timers.set(
      Timer.CREDIT_STALL,
      since === undefined || s.creditStallTimeoutMs <= 0 ? undefined : since + s.creditStallTimeoutMs,
    );
    this.timers.set(
      Timer.CREDIT_STALL_REPORT,
      since === undefined || this.stallReported ? undefined : since + s.creditStallReportMs,
    );
  }

  /** Classification of this side's messages (SPEC.md §9.4). Exact at any time; final once closed. */
  deliveryReport(): DeliveryReport {
    const consumed = this.peerConsumed;
    const certain =
      this.peerDelivered === undefined ? this.writtenCount : Math.min(this.peerDelivered, this.writtenCount);
    const notProcessedFrom = Math.max(certain, consumed) + 1;
    const payloads = this.outbox.toArray();
    const split = notProcessedFrom - consumed - 1;
    return {
      queued: this.queuedCount,
      consumed,
      notProcessedFrom,
      unknown: payloads.slice(0, split),
      notProcessed: payloads.slice(split),
    };
  }
}
