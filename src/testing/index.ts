/**
 * `heartwire/testing`: property-test heartwire, and protocols built on it, without sockets or
 * real time — and break real sockets on purpose.
 *
 * - {@link VirtualClock}: timers on a virtual time line.
 * - {@link SimulatedNetwork}: two sans-IO engines joined by simulated TCP paths (latency,
 *   bandwidth, chunk splitting, partitions, crashes, stalled consumers).
 * - fast-check arbitraries for frames ({@link arbitraryFrame}, …) and fault schedules
 *   ({@link arbitraryFaultSchedule}, …).
 * - {@link Simulation}: your application, written against `connect()` / `createServer()`, on a
 *   simulated network and virtual time, with fault schedules ({@link arbitrarySimFaults}).
 *
 * `FaultProxy` (a real TCP proxy with runtime faults) is in `heartwire/testing/fault-proxy`:
 * this entry loads neither `node:net` nor `node:tls`.
 * @module
 */
export * from './clock.js';
export * from './simnet.js';
export * from './faults.js';
export * from './arbitraries.js';
export { checkPathParams, PathDirection, segmentSize } from './path.js';
export type { Segment } from './path.js';
export { Simulation, SimulationError } from './simulation.js';
export type { SimulationOptions } from './simulation.js';
export type { SimTimer } from './event-loop.js';
export { arbitrarySimFaults, describeSimFaults, scheduleSimFaults } from './sim-faults.js';
export type { SimFault, SimFaultHandlers, SimFaultOptions, TimedSimFault } from './sim-faults.js';
export { EngineDriver } from './engine-driver.js';
export type { DriverHost, EngineDriverOptions } from './engine-driver.js';
