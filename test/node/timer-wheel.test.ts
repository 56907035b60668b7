import { expect } from 'chai';
import fc from 'fast-check';
import { MAX_QUANTUM_MS, TimerWheel, WheelTimer, quantumFor } from '../../src/node/timer-wheel.js';
import type { TimerSource } from '../../src/node/timer-wheel.js';
import { VirtualClock } from '../../src/testing/clock.js';

/** A wheel on a virtual clock, counting the underlying timers it sets. */
function virtualWheel(clock = new VirtualClock()): {
  clock: VirtualClock;
  wheel: TimerWheel;
  armed: () => number;
} {
  let live = 0;
  const source: TimerSource = {
    now: () => clock.now,
    set: (delay, fn) => {
      live++;
      return clock.setTimer(clock.now + delay, () => {
        live--;
        fn();
      });
    },
    clear: (handle) => {
      if (clock.cancel(handle as number)) live--;
    },
  };
  return { clock, wheel: new TimerWheel(source), armed: () => live };
}

describe('TimerWheel', () => {
  it('rounds the slack down to a power of two, at most 64 ms', () => {
    expect([0, 1, 1.9, 2, 3, 4, 50, 64, 65, 1000, Number.NaN].map(quantumFor)).to.deep.equal([
      1, 1, 1, 2, 2, 4, 32, 64, 64, 64, 1,
    ]);
    expect(MAX_QUANTUM_MS).to.equal(64);
  });

  it('fires every timer at or after its deadline, at most one quantum late, one wake-up per bucket', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 20_000 }), fc.constantFrom(0, 1, 5, 16, 64, 100)), {
          minLength: 1,
          maxLength: 300,
        }),
        (specs) => {
          const { clock, wheel, armed } = virtualWheel();
          const fired: { deadline: number; slack: number; at: number }[] = [];
          for (const [deadline, slack] of specs) {
            const timer = new WheelTimer(() => fired.push({ deadline, slack, at: clock.now }));
            wheel.schedule(timer, deadline, slack);
          }
          expect(armed()).to.equal(1);
          clock.advanceTo(30_000);
          expect(fired).to.have.length(specs.length);
          for (const f of fired) {
            expect(f.at).to.be.at.least(f.deadline);
            expect(f.at - f.deadline).to.be.below(quantumFor(f.slack));
          }
          const buckets = new Set(specs.map(([d, s]) => Math.ceil(d / quantumFor(s)) * quantumFor(s)));
          expect(wheel.wakeups).to.equal(buckets.size);
          expect(armed()).to.equal(0);
        },
      ),
    );
  });

  it('10 000 timers jittered over 20 s wake the process at most once per 64 ms', () => {
    const { clock, wheel } = virtualWheel();
    let fired = 0;
    for (let i = 0; i < 10_000; i++) {
      const timer = new WheelTimer(() => fired++);
      wheel.schedule(timer, Math.random() * 20_000, 64);
    }
    clock.advanceTo(20_100);
    expect(fired).to.equal(10_000);
    expect(wheel.wakeups).to.be.at.most(Math.ceil(20_000 / 64) + 1);
  });

  it('cancels, moves earlier and later, and drops the underlying timer when empty', () => {
    const { clock, wheel, armed } = virtualWheel();
    const log: string[] = [];
    const a = new WheelTimer(() => log.push(`a@${clock.now}`));
    const b = new WheelTimer(() => log.push(`b@${clock.now}`));
    wheel.schedule(a, 1000, 64); // bucket 1024
    wheel.schedule(b, 1000, 64);
    expect(a.armed && b.armed).to.equal(true);
    expect(a.firesAt).to.equal(1024);
    wheel.cancel(b);
    expect(b.armed).to.equal(false);
    wheel.schedule(a, 3000, 64); // later: 3008
    expect(a.firesAt).to.equal(3008);
    expect(wheel.size).to.equal(1);
    clock.advanceTo(2000);
    expect(log).to.deep.equal([]);
    expect(wheel.wakeups).to.equal(0); // the emptied bucket's timer moved on with it
    wheel.schedule(a, 1500, 1); // earlier than now: fires on the next pass
    clock.advanceTo(2001);
    expect(log).to.deep.equal(['a@2000']);
    expect(armed()).to.equal(0);
    expect(wheel.size).to.equal(0);
    wheel.cancel(a); // harmless
  });

  it('defers a timer re-armed for a due time from inside a callback to the next pass', () => {
    const { clock, wheel } = virtualWheel();
    let count = 0;
    const timer: WheelTimer = new WheelTimer(() => {
      count++;
      if (count < 5) wheel.schedule(timer, clock.now, 64); // "due now" again
    });
    wheel.schedule(timer, 100, 64);
    clock.advanceTo(1000);
    expect(count).to.equal(5);
    expect(wheel.wakeups).to.equal(5);
  });

  it('lets a callback cancel another timer of the same bucket', () => {
    const { clock, wheel } = virtualWheel();
    const log: string[] = [];
    const b = new WheelTimer(() => log.push('b'));
    const a = new WheelTimer(() => {
      log.push('a');
      wheel.cancel(b);
    });
    wheel.schedule(a, 10, 64);
    wheel.schedule(b, 20, 64);
    clock.advanceTo(100);
    expect(log).to.deep.equal(['a']);
  });

  it('serves the whole batch when a callback throws, then throws its error', () => {
    const { clock, wheel, armed } = virtualWheel();
    const log: string[] = [];
    wheel.schedule(
      new WheelTimer(() => {
        throw new Error('boom');
      }),
      10,
      64,
    );
    wheel.schedule(new WheelTimer(() => log.push('second')), 20, 64);
    wheel.schedule(new WheelTimer(() => log.push('later')), 200, 64);
    expect(() => clock.advanceTo(100)).to.throw('boom');
    expect(log).to.deep.equal(['second']);
    expect(armed()).to.equal(1);
    clock.advanceTo(300);
    expect(log).to.deep.equal(['second', 'later']);
  });
});
