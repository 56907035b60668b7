/**
 * Engine options resolved and checked (defaults applied; `RangeError` on an invalid option), and
 * the engine's deterministic PRNG.
 * @module
 */
import {
  FRAME_HEADER_SIZE,
  MAX_FRAME_PAYLOAD,
  MAX_IDLE_TIMEOUT_MS,
  MESSAGE_CREDIT_OVERHEAD,
  MIN_FRAME_PAYLOAD,
  MIN_IDLE_TIMEOUT_MS,
  MIN_INITIAL_CREDIT,
  PROTOCOL_VERSION,
} from '../constants.js';
import { MAX_ALTERNATIVES, invalidAlternative } from '../alternatives.js';
import type { EngineOptions, MemoryBudget, Role } from '../types.js';

/** Smallest payload of a DATA frame that does not finish its message (unless fewer bytes remain). */
export const MIN_FRAGMENT = 512;
export const U32 = 0x1_0000_0000;

/** Resolved options with defaults applied. */
export interface Settings {
  role: Role;
  idleTimeoutMs: number;
  initialWindow: number;
  maxWindow: number;
  maxFramePayload: number;
  maxMessageBytes: number;
  maxSendQueueBytes: number;
  handshakeTimeoutMs: number;
  closeTimeoutMs: number;
  writeStallTimeoutMs: number | undefined;
  creditStallReportMs: number;
  creditStallTimeoutMs: number;
  clientIdleRange: readonly [number, number];
  versions: readonly number[];
  extensions: readonly string[];
  applicationProtocols: readonly string[];
  requireApplicationProtocol: boolean;
  alternatives: readonly string[];
  random: () => number;
  budget: MemoryBudget | undefined;
  /** Storage for assembled messages of at least 4 KiB (see `EngineOptions.allocate`). */
  allocate: (size: number) => Uint8Array;
}

/**
 * A deterministic PRNG (mulberry32) yielding numbers in [0, 1): timer jitter in the engine, and
 * reproducible randomness in `heartwire/testing`.
 * @param seed any integer
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / U32;
  };
}

/** The default `allocate`. */
const zeroed = (size: number): Uint8Array => new Uint8Array(size);

function positiveOption(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < min) {
    throw new RangeError(`heartwire: option ${name} must be a finite number ≥ ${min}, got ${value}`);
  }
  return value;
}

/** Alternatives a sender may send (SPEC.md §9.5), copied; throws `RangeError` otherwise. */
export function checkAlternatives(name: string, list: readonly string[] | undefined): readonly string[] {
  if (list === undefined) return [];
  const bad = Array.isArray(list) ? invalidAlternative(list) : 0;
  if (bad >= 0) {
    throw new RangeError(
      `heartwire: option ${name} must list at most ${MAX_ALTERNATIVES} endpoints "host:port", "[v6]:port" or "unix:/path" of at most 256 bytes; entry ${bad} is not one`,
    );
  }
  return [...list];
}

export function resolveSettings(options: EngineOptions): Settings {
  const idleTimeoutMs = positiveOption('idleTimeoutMs', options.idleTimeoutMs, 20_000, MIN_IDLE_TIMEOUT_MS);
  if (idleTimeoutMs > MAX_IDLE_TIMEOUT_MS) throw new RangeError('heartwire: idleTimeoutMs too large');
  const initialWindow = positiveOption(
    'initialWindowBytes',
    options.initialWindowBytes,
    64 * 1024,
    MIN_INITIAL_CREDIT,
  );
  // A shared budget may cap what one connection reserves beyond its initial window.
  const share = options.budget?.maxShare;
  const maxWindow = Math.max(
    initialWindow,
    Math.min(
      positiveOption('maxWindowBytes', options.maxWindowBytes, 8 * 1024 * 1024, MIN_INITIAL_CREDIT),
      share === undefined ? Number.POSITIVE_INFINITY : initialWindow + Math.floor(share),
    ),
  );
  const maxFramePayload = positiveOption(
    'maxFramePayloadBytes',
    options.maxFramePayloadBytes,
    64 * 1024,
    MIN_FRAME_PAYLOAD,
  );
  if (maxFramePayload > MAX_FRAME_PAYLOAD) throw new RangeError('heartwire: maxFramePayloadBytes too large');
  // A message must fit the largest window with its frame headers (SPEC.md §7 rule 7). Frames other
  // than the last carry ≥ MIN_FRAGMENT bytes, so a message of M bytes costs at most
  // M × (1 + 6 / MIN_FRAGMENT) + 2 headers + the per-message overhead.
  const fitting = Math.max(
    1,
    Math.floor(
      (maxWindow - 2 * FRAME_HEADER_SIZE - MESSAGE_CREDIT_OVERHEAD) / (1 + FRAME_HEADER_SIZE / MIN_FRAGMENT),
    ),
  );
  const maxMessageBytes = Math.min(
    positiveOption('maxMessageBytes', options.maxMessageBytes, 4 * 1024 * 1024, 1),
    fitting,
  );
  const role = options.role;
  if (role !== 'client' && role !== 'server')
    throw new RangeError('heartwire: role must be client or server');
  return {
    role,
    idleTimeoutMs,
    initialWindow,
    maxWindow,
    maxFramePayload,
    maxMessageBytes,
    maxSendQueueBytes: positiveOption('maxSendQueueBytes', options.maxSendQueueBytes, 4 * 1024 * 1024),
    handshakeTimeoutMs: positiveOption('handshakeTimeoutMs', options.handshakeTimeoutMs, 10_000),
    closeTimeoutMs: positiveOption('closeTimeoutMs', options.closeTimeoutMs, 30_000),
    writeStallTimeoutMs:
      options.writeStallTimeoutMs === 0
        ? undefined
        : positiveOption('writeStallTimeoutMs', options.writeStallTimeoutMs, idleTimeoutMs),
    creditStallReportMs: positiveOption('creditStallReportMs', options.creditStallReportMs, 5_000),
    creditStallTimeoutMs: positiveOption('creditStallTimeoutMs', options.creditStallTimeoutMs, 0, 0),
    clientIdleRange: options.clientIdleTimeoutRangeMs ?? [1000, MAX_IDLE_TIMEOUT_MS],
    versions: options.versions ?? [PROTOCOL_VERSION],
    extensions: options.extensions ?? [],
    applicationProtocols: options.applicationProtocols ?? [],
    requireApplicationProtocol: options.requireApplicationProtocol ?? false,
    alternatives: checkAlternatives('alternatives', options.alternatives),
    random: options.random ?? seededRandom(options.seed ?? 1),
    allocate: options.allocate ?? zeroed,
    budget: options.budget,
  };
}
