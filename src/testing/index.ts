/**
 * `heartwire/testing`: property-test heartwire, and protocols built on it, without sockets or
 * real time — and break real sockets on purpose.
 *
 * - {@link VirtualClock}: timers on a virtual time line.
 * - {@link SimulatedNetwork}: two sans-IO engines joined by simulated TCP paths (latency,
 *   bandwidth, chunk splitting, partitions, crashes, stalled consumers).
 * - fast-check arbitraries for frames ({@link arbitraryFrame}, …) and fault schedules
 *   ({@link arbitraryFaultSchedule}, …).
 * - {@link FaultProxy}: a real TCP proxy on loopback with runtime faults (blackhole, latency,
 *   bandwidth, slicing, reset).
 * @module
 */
export * from './clock.js';
export * from './simnet.js';
export * from './faults.js';
export * from './arbitraries.js';
export { FaultProxy } from './fault-proxy.js';
export type {
  FaultDirection,
  FaultProxyEndpoint,
  FaultProxyOptions,
  FaultDirectionStats,
  FaultProxyStats,
} from './fault-proxy.js';
export { checkPathParams, PathDirection, segmentSize } from './path.js';
export type { Segment } from './path.js';
export { Simulation, SimulationError } from './simulation.js';
export type { SimulationOptions } from './simulation.js';
export type { SimTimer } from './event-loop.js';
