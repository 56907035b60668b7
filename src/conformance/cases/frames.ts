/**
 * SPEC.md §4 (frame layout), §5 (frame types and their limits), §10 (limits), §13 (extension
 * frames): each frame type's size limits, unknown types, wrong roles, flags.
 * @module
 */
import { FLAG_ECHO, FrameType } from '../../protocol/constants.js';
import type { WireErrorName } from '../../protocol/errors.js';
import { encodeCloseAck, encodeGoAway, encodeWelcome } from '../../protocol/messages.js';
import { expectAlive, expectError } from '../expect.js';
import type { ClientPeer } from '../client-peer.js';
import type { CaseContext, ConformanceCase } from '../types.js';
import {
  concat,
  creditFrame,
  dataFrame,
  extensionFrame,
  header,
  heartbeatFrame,
  helloFrame,
  defaultHello,
  pattern,
  rawFrame,
} from '../wire.js';

/** After the handshake, `bytes(peer)` must be answered with ERROR `codes`. */
function rejected(
  id: string,
  section: string,
  title: string,
  bytes: (peer: ClientPeer) => Uint8Array,
  codes: WireErrorName[],
): ConformanceCase {
  return {
    id,
    section,
    title,
    async run(context) {
      const peer = await context.open();
      peer.send(bytes(peer));
      return expectError(context, peer, codes);
    },
  };
}

/** After the handshake, `send(peer)` must be accepted and the connection stay usable. */
function accepted(
  id: string,
  section: string,
  title: string,
  send: (peer: ClientPeer, context: CaseContext) => Promise<void> | void,
): ConformanceCase {
  return {
    id,
    section,
    title,
    async run(context) {
      const peer = await context.open();
      await send(peer, context);
      return expectAlive(context, peer, title);
    },
  };
}

const welcomeBody = encodeWelcome({
  version: 1,
  extensions: [],
  idleTimeoutMs: 1000,
  initialCredit: 65536,
  maxFramePayload: 16384,
  maxMessageSize: 65536,
  clientIdleTimeoutMs: 1000,
  applicationProtocol: '',
});

export const frameCases: ConformanceCase[] = [
  rejected(
    '5/unknown-type-0x03',
    '§5',
    'frame type 0x03 (vector unknown-type-0x03): PROTOCOL_ERROR',
    () => header(0, 0x03),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '5/unknown-type-0x16',
    '§5',
    'frame type 0x16 (after ERROR 0x15): PROTOCOL_ERROR',
    () => header(0, 0x16),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '5/unknown-type-0x3f',
    '§5',
    'frame type 0x3F (below the extension range): PROTOCOL_ERROR',
    () => header(0, 0x3f),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '10/credit-short',
    '§10',
    'CREDIT with a 15-byte payload (vector credit-short): PROTOCOL_ERROR on the header',
    () => header(15, FrameType.CREDIT),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '10/credit-long',
    '§10',
    'CREDIT with a 17-byte payload: FRAME_TOO_LARGE on the header',
    () => header(17, FrameType.CREDIT),
    ['FRAME_TOO_LARGE'],
  ),
  rejected(
    '10/heartbeat-short',
    '§10',
    'HEARTBEAT with a 35-byte payload: PROTOCOL_ERROR on the header',
    () => header(35, FrameType.HEARTBEAT),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '10/heartbeat-long',
    '§10',
    'HEARTBEAT with a 37-byte payload (vector heartbeat-long): FRAME_TOO_LARGE on the header',
    () => header(37, FrameType.HEARTBEAT),
    ['FRAME_TOO_LARGE'],
  ),
  rejected(
    '4/data-above-max-frame-payload',
    '§4',
    "a DATA header above the server's max_frame_payload (vector oversized-data-header): FRAME_TOO_LARGE before any payload",
    (peer) => header(peer.welcome!.maxFramePayload + 1, FrameType.DATA, 1),
    ['FRAME_TOO_LARGE'],
  ),
  rejected(
    '10/control-too-large',
    '§10',
    'a CLOSE header of 4097 bytes (vector control-too-large): FRAME_TOO_LARGE before any payload',
    () => header(4097, FrameType.CLOSE),
    ['FRAME_TOO_LARGE'],
  ),
  rejected(
    '13/extension-too-large',
    '§13',
    'an ignorable extension frame (0x80) of 4097 bytes: FRAME_TOO_LARGE before any payload',
    () => header(4097, 0x80),
    ['FRAME_TOO_LARGE'],
  ),
  rejected(
    '5.1/empty-data-without-end',
    '§5.1',
    'an empty DATA frame without END (vector empty-data-without-end): PROTOCOL_ERROR',
    () => header(0, FrameType.DATA, 0),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '2/u64-not-below-2^53',
    '§2',
    'CREDIT with a limit of 2^53 (vector credit-counter-overflow): PROTOCOL_ERROR',
    () => rawFrame(FrameType.CREDIT, 0, Uint8Array.of(0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '5.4/malformed-protobuf',
    '§5.4',
    'a CLOSE payload that is not a valid Close message (vector malformed-protobuf): PROTOCOL_ERROR',
    () => rawFrame(FrameType.CLOSE, 0, Uint8Array.of(0x08)),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '5/wrong-role-welcome',
    '§5',
    'WELCOME from the client: PROTOCOL_ERROR',
    () => rawFrame(FrameType.WELCOME, 0, welcomeBody),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '5/wrong-role-goaway',
    '§5',
    'GOAWAY from the client: PROTOCOL_ERROR',
    () =>
      rawFrame(
        FrameType.GOAWAY,
        0,
        encodeGoAway({
          graceMs: 1000,
          reason: 1,
          consumedMessages: 0,
          retryAfterMs: 0,
          doNotReconnect: false,
          message: '',
        }),
      ),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '5/wrong-role-close-ack',
    '§5',
    'CLOSE_ACK from the client: PROTOCOL_ERROR',
    () =>
      rawFrame(
        FrameType.CLOSE_ACK,
        0,
        encodeCloseAck({ sentMessages: 0, consumedMessages: 0, deliveredMessages: 0 }),
      ),
    ['PROTOCOL_ERROR'],
  ),
  rejected('5/second-hello', '§5', 'a second HELLO: PROTOCOL_ERROR', () => helloFrame(defaultHello()), [
    'PROTOCOL_ERROR',
  ]),
  rejected(
    '13/must-understand-0x40',
    '§13',
    'a must-understand extension frame 0x40 not negotiated: PROTOCOL_ERROR',
    () => extensionFrame(0x40),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '13/must-understand-0x7f',
    '§13',
    'a must-understand extension frame 0x7F not negotiated: PROTOCOL_ERROR',
    () => extensionFrame(0x7f, 0, Uint8Array.of(1, 2, 3)),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '4/type-checked-before-size',
    '§4',
    'an undefined type 0x03 with a length of 2^32 − 1: PROTOCOL_ERROR (the type is checked before the size)',
    () => header(0xffffffff, 0x03),
    ['PROTOCOL_ERROR'],
  ),
  rejected(
    '5.2/consumed-beyond-sent',
    '§5.2',
    'a CREDIT reporting 5 server messages consumed when the server sent none: PROTOCOL_ERROR',
    (peer) => creditFrame(peer.grantedLimit, 5),
    ['PROTOCOL_ERROR'],
  ),
  accepted(
    '13/ignorable-extensions',
    '§13',
    'ignorable extension frames 0x80 and 0xFF are ignored',
    (peer) => {
      peer.send(
        concat(
          extensionFrame(0x80, 0x05, Uint8Array.of(0xde, 0xad, 0x01)),
          extensionFrame(0xff, 0xff, pattern(4096)),
        ),
      );
    },
  ),
  accepted(
    '4/undefined-flags-ignored',
    '§4',
    'undefined flag bits on DATA, CREDIT and HEARTBEAT are ignored',
    (peer) => {
      const payload = pattern(100);
      const data = dataFrame(payload, true);
      data[5] = 0xff; // END and every undefined bit
      const credit = creditFrame(peer.grantedLimit, 0);
      credit[5] = 0xff;
      const hb = heartbeatFrame({ ...peer.heartbeatFields(), echo: false, echoTimestamp: 0, echoDelay: 0 });
      hb[5] = 0xff & ~FLAG_ECHO;
      peer.send(concat(data, credit, hb));
      peer.noteDataSent(payload.length, true);
    },
  ),
  accepted(
    '5.1/empty-message',
    '§5.1',
    'an empty message (one empty DATA frame with END) counts as a message',
    (peer) => {
      peer.send(dataFrame(new Uint8Array(0), true));
      peer.noteDataSent(0, true);
    },
  ),
  accepted(
    '5.1/message-in-fragments',
    '§5.1',
    'a message in three DATA frames (512, 512, then END with 1) counts as one message',
    (peer) => {
      const payload = pattern(1025);
      peer.send(
        concat(
          dataFrame(payload.subarray(0, 512), false),
          dataFrame(payload.subarray(512, 1024), false),
          dataFrame(payload.subarray(1024), true),
        ),
      );
      peer.noteDataSent(512, false);
      peer.noteDataSent(512, false);
      peer.noteDataSent(1, true);
    },
  ),
  accepted(
    '4/frames-byte-by-byte',
    '§4',
    'a DATA frame and a HEARTBEAT written one byte at a time are accepted',
    async (peer) => {
      peer.stopHeartbeats();
      const payload = pattern(40);
      const bytes = concat(dataFrame(payload, true), heartbeatFrame(peer.heartbeatFields()));
      peer.noteDataSent(payload.length, true);
      for (const byte of bytes) {
        peer.send(Uint8Array.of(byte));
        await peer.sleep(1);
      }
      peer.startHeartbeats();
    },
  ),
];
