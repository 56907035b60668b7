/**
 * The broker's application protocol: `proto/broker.proto`, loaded at runtime with protobufjs.
 * Every heartwire message between a broker and its clients is one {@link Envelope}.
 * @module
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** Error codes of `Error` messages (`broker.proto` `ErrorCode`). */
export type BrokerErrorCode =
  | 'ERROR_CODE_UNSPECIFIED'
  | 'QUEUE_FULL'
  | 'BAD_REQUEST'
  | 'LIMIT_EXCEEDED'
  | 'UNKNOWN_DELIVERY_TAG'
  | 'UNAVAILABLE';

/** Client → broker: enqueue `body` on `queue`; answered by `Confirm` or `Error` with the same id. */
export interface Publish {
  queue: string;
  id: number;
  body: Uint8Array;
}
/** Client → broker: receive the messages of `queue`, at most `prefetch` unacknowledged at once. */
export interface Subscribe {
  queue: string;
  prefetch: number;
}
/** Broker → client: a message; settle it with `Ack` or `Nack` (tags are per connection). */
export interface Deliver {
  queue: string;
  deliveryTag: number;
  body: Uint8Array;
  redelivered: boolean;
}
/** Client → broker: the delivery was processed. */
export interface Ack {
  deliveryTag: number;
}
/** Client → broker: the delivery was not processed; requeue it or drop it. */
export interface Nack {
  deliveryTag: number;
  requeue: boolean;
}
/** Broker → client: the publish with this id is enqueued. */
export interface Confirm {
  id: number;
}
/** Broker → client: shutting down; nothing more will be delivered on this subscription. */
export interface Drained {
  queue: string;
}
/** Broker → client: a request failed (`id`: the publish it answers, if any). */
export interface BrokerErrorMessage {
  code: BrokerErrorCode;
  message: string;
  id: number;
  queue: string;
}

/** One message on the wire: exactly one of the fields, named by `kind`. */
export type Envelope =
  | { kind: 'publish'; publish: Publish }
  | { kind: 'subscribe'; subscribe: Subscribe }
  | { kind: 'deliver'; deliver: Deliver }
  | { kind: 'ack'; ack: Ack }
  | { kind: 'nack'; nack: Nack }
  | { kind: 'confirm'; confirm: Confirm }
  | { kind: 'error'; error: BrokerErrorMessage }
  | { kind: 'drained'; drained: Drained };

/** Finds `proto/broker.proto` from this file, whether run from the sources or from `dist/`. */
function protoPath(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const candidate = join(dir, 'proto', 'broker.proto');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error('broker.proto not found');
  }
}

const root = await protobuf.load(protoPath());
const EnvelopeType = root.lookupType('heartwire.broker.v1.Envelope');

/** Encode an envelope. */
export function encode(envelope: Envelope): Uint8Array {
  const { kind, ...fields } = envelope;
  void kind;
  return EnvelopeType.encode(EnvelopeType.fromObject(fields)).finish();
}

/** Decode an envelope; throws on bytes that are not a valid `Envelope` with a known kind. */
export function decode(bytes: Uint8Array): Envelope {
  const message = EnvelopeType.decode(bytes);
  const object = EnvelopeType.toObject(message, {
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  if (typeof object.kind !== 'string') throw new Error('empty envelope');
  return object as Envelope;
}
