/**
 * The `send()` callers of a `Connection` waiting for room in the engine's send queue.
 * @module
 */
import type { Engine } from '../protocol/engine.js';

/** A `send()` caller waiting for room in the send queue; its message is not accepted yet. */
interface WaitingSend {
  payload: Uint8Array;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * `send()` callers waiting for room in the engine's send queue, in call order (`waiting[head]`
 * first). Their messages are not accepted: nothing here is in the delivery report.
 */
export class WaitingSends {
  private waiting: (WaitingSend | undefined)[] = [];
  private head = 0;

  /** Nobody waits. */
  get empty(): boolean {
    return this.head === this.waiting.length;
  }

  /** Wait for room: the promise settles when {@link admit} accepts the message or {@link rejectAll} runs. */
  wait(payload: Uint8Array): Promise<void> {
    const promise = new Promise<void>((resolve, reject) => this.waiting.push({ payload, resolve, reject }));
    promise.catch(() => {});
    return promise;
  }

  /**
   * Accept the waiting messages into `engine` while its send queue has room, in order (a message
   * the engine refuses rejects its caller). Returns true when nobody waits any more.
   */
  admit(engine: Engine, t: number): boolean {
    while (this.head < this.waiting.length) {
      const next = this.waiting[this.head]!;
      try {
        if (!engine.trySend(t, next.payload)) break;
      } catch (error) {
        this.waiting[this.head++] = undefined;
        next.reject(error as Error);
        continue;
      }
      this.waiting[this.head++] = undefined;
      next.resolve();
    }
    if (this.head === this.waiting.length) {
      if (this.head > 0) {
        this.waiting = [];
        this.head = 0;
      }
      return true;
    }
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    return false;
  }

  /**
   * The connection closed: the waiting callers' messages were never accepted (they are in no
   * report); their promises reject with the close error.
   */
  rejectAll(error: Error): void {
    const waiting = this.waiting;
    const head = this.head;
    this.waiting = [];
    this.head = 0;
    for (let i = head; i < waiting.length; i++) waiting[i]!.reject(error);
  }
}
