/**
 * Alternative endpoints carried by WELCOME and GOAWAY (SPEC.md §9.5): syntax, bounds, and the
 * receiver's filter. Pure functions, no I/O.
 * @module
 */
import { MAX_STRING_BYTES } from './constants.js';

/** Most alternatives a sender puts in one frame; a receiver uses at most this many (SPEC.md §9.5). */
export const MAX_ALTERNATIVES = 8;

/** A parsed alternative: a TCP `{ host, port }` or a Unix domain socket `{ path }`. */
export type AlternativeEndpoint = { host: string; port: number } | { path: string };

const utf8 = new TextEncoder();
/** DNS name (labels of letters, digits, hyphens, underscores) or dotted IPv4. */
const HOST = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})?)*\.?$/;
const IPV6 = /^[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?$/;
const PORT = /^[1-9][0-9]{0,4}$/;

/**
 * Parse one alternative (`host:port`, `[v6]:port` or `unix:/absolute/path`, at most 256 bytes of
 * UTF-8). Returns `undefined` when it is not of that syntax.
 */
export function parseAlternative(text: string): AlternativeEndpoint | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_STRING_BYTES) return undefined;
  if (utf8.encode(text).length > MAX_STRING_BYTES) return undefined;
  if (text.startsWith('unix:')) {
    const path = text.slice(5);
    return path.startsWith('/') && !path.includes('\0') ? { path } : undefined;
  }
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const portText = text.slice(colon + 1);
  if (!PORT.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 65535) return undefined;
  let host = text.slice(0, colon);
  if (host.startsWith('[')) {
    if (!host.endsWith(']')) return undefined;
    host = host.slice(1, -1);
    if (!host.includes(':') || !IPV6.test(host)) return undefined;
    return { host, port };
  }
  return HOST.test(host) ? { host, port } : undefined;
}

/** Format an endpoint as an alternative (the inverse of {@link parseAlternative}). */
export function formatAlternative(endpoint: AlternativeEndpoint): string {
  if ('path' in endpoint) return `unix:${endpoint.path}`;
  return endpoint.host.includes(':')
    ? `[${endpoint.host}]:${endpoint.port}`
    : `${endpoint.host}:${endpoint.port}`;
}

/**
 * The index of the first entry a sender must not send (invalid, or beyond {@link MAX_ALTERNATIVES}),
 * or -1 when the whole list may be sent.
 */
export function invalidAlternative(list: readonly string[]): number {
  for (let i = 0; i < list.length; i++) {
    if (i >= MAX_ALTERNATIVES || parseAlternative(list[i]!) === undefined) return i;
  }
  return -1;
}

/**
 * What a receiver uses of a received list (SPEC.md §9.5): valid entries only, without duplicates,
 * at most {@link MAX_ALTERNATIVES}, in the order received.
 */
export function usableAlternatives(list: readonly string[]): string[] {
  const out: string[] = [];
  for (const entry of list) {
    if (out.length >= MAX_ALTERNATIVES) break;
    if (parseAlternative(entry) !== undefined && !out.includes(entry)) out.push(entry);
  }
  return out;
}
