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
import diagnosticsChannel from 'node:diagnostics_channel';

/** The channel names heartwire publishes to. */
export const channels = {
  open: diagnosticsChannel.channel('heartwire:connection:open'),
  state: diagnosticsChannel.channel('heartwire:connection:state'),
  goaway: diagnosticsChannel.channel('heartwire:connection:goaway'),
  close: diagnosticsChannel.channel('heartwire:connection:close'),
} as const;

/** @internal Publish when someone listens. */
export function publish(name: keyof typeof channels, message: object): void {
  const channel = channels[name];
  if (channel.hasSubscribers) channel.publish(message);
}
