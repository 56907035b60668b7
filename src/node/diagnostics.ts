/**
 * `node:diagnostics_channel` integration. Subscribe to observe every connection of the process
 * without touching application code (like undici):
 *
 * | channel | message |
 * |---|---|
 * | `heartwire:connection:open` | `{ connection, negotiated }` |
 * | `heartwire:connection:state` | `{ connection, from, to }` |
 * | `heartwire:connection:goaway` | `{ connection, goAway }` |
 * | `heartwire:connection:close` | `{ connection, info }` (clean flag, error, delivery report) |
 *
 * Nothing is published (and nothing allocated) while a channel has no subscriber.
 * @module
 */
// Named imports: a default import would appear in the declarations, which then need
// `esModuleInterop` in a CommonJS consumer.
import { channel } from 'node:diagnostics_channel';
import type { Channel } from 'node:diagnostics_channel';

/** The channel names heartwire publishes to. */
export const channels: {
  readonly open: Channel;
  readonly state: Channel;
  readonly goaway: Channel;
  readonly close: Channel;
} = {
  open: channel('heartwire:connection:open'),
  state: channel('heartwire:connection:state'),
  goaway: channel('heartwire:connection:goaway'),
  close: channel('heartwire:connection:close'),
};

/** @internal Publish when someone listens. */
export function publish(name: keyof typeof channels, message: object): void {
  const channel = channels[name];
  if (channel.hasSubscribers) channel.publish(message);
}
