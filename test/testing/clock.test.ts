import { expect } from 'chai';
import fc from 'fast-check';
import { VirtualClock } from '../../src/testing/clock.js';

describe('testing/VirtualClock', () => {
  it('starts at 0 (or the given start) and only moves when told', () => {
    expect(new VirtualClock().now).to.equal(0);
    const clock = new VirtualClock({ start: 1000 });
    expect(clock.now).to.equal(1000);
    clock.advanceBy(5);
    expect(clock.now).to.equal(1005);
    clock.advanceTo(1005);
    expect(clock.now).to.equal(1005);
    expect(() => clock.advanceTo(1004)).to.throw(RangeError);
    expect(() => clock.advanceBy(-1)).to.throw(RangeError);
  });

  it('fires timers in time order, at their time, and equal times in insertion order', () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    const at = (t: number, name: string) => clock.setTimer(t, () => fired.push(`${name}@${clock.now}`));
    at(30, 'c');
    at(10, 'a1');
    at(20, 'b');
    at(10, 'a2');
    at(10, 'a3');
    expect(clock.nextTimerAt()).to.equal(10);
    clock.advanceTo(25);
    expect(fired).to.deep.equal(['a1@10', 'a2@10', 'a3@10', 'b@20']);
    expect(clock.now).to.equal(25);
    expect(clock.nextTimerAt()).to.equal(30);
    clock.advanceBy(100);
    expect(fired.at(-1)).to.equal('c@30');
    expect(clock.nextTimerAt()).to.equal(undefined);
    expect(clock.pendingTimers).to.equal(0);
  });

  it('fires timers that callbacks set, including at the same instant (after the ones already due)', () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    clock.setTimer(10, () => {
      fired.push('first');
      clock.setTimer(clock.now, () => fired.push('same-instant'));
      clock.setTimer(15, () => fired.push('later'));
      clock.setTimer(500, () => fired.push('too-late'));
    });
    clock.setTimer(10, () => fired.push('second'));
    clock.advanceTo(20);
    expect(fired).to.deep.equal(['first', 'second', 'same-instant', 'later']);
  });

  it('treats a time in the past as now and rejects non-finite times', () => {
    const clock = new VirtualClock({ start: 100 });
    let firedAt: number | undefined;
    clock.setTimer(5, () => (firedAt = clock.now));
    expect(clock.nextTimerAt()).to.equal(100);
    clock.advanceBy(0);
    expect(firedAt).to.equal(100);
    expect(() => clock.setTimer(Number.NaN, () => {})).to.throw(RangeError);
    expect(() => clock.setTimer(Infinity, () => {})).to.throw(RangeError);
  });

  it('cancels timers', () => {
    const clock = new VirtualClock();
    let fired = 0;
    const a = clock.setTimer(10, () => fired++);
    clock.setTimer(20, () => fired++);
    expect(clock.cancel(a)).to.equal(true);
    expect(clock.cancel(a)).to.equal(false);
    expect(clock.nextTimerAt()).to.equal(20);
    expect(clock.pendingTimers).to.equal(1);
    clock.advanceTo(100);
    expect(fired).to.equal(1);
  });

  it('lets a callback cancel a timer due at the same instant', () => {
    const clock = new VirtualClock();
    const fired: string[] = [];
    clock.setTimer(10, () => {
      fired.push('a');
      clock.cancel(b);
    });
    const b = clock.setTimer(10, () => fired.push('b'));
    clock.advanceTo(10);
    expect(fired).to.deep.equal(['a']);
  });

  it('runUntil stops at the timer that satisfies the predicate, or at the limit', () => {
    const clock = new VirtualClock();
    let count = 0;
    for (const t of [10, 20, 30]) clock.setTimer(t, () => count++);
    expect(clock.runUntil(() => count === 2, 1000)).to.equal(true);
    expect(clock.now).to.equal(20);
    expect(clock.runUntil(() => true, 1000)).to.equal(true);
    expect(clock.now).to.equal(20);
    expect(clock.runUntil(() => count === 99, 50)).to.equal(false);
    expect(clock.now).to.equal(70);
    expect(count).to.equal(3);
  });

  it('guards against runaway timer loops at one instant', () => {
    const clock = new VirtualClock({ maxTimersPerInstant: 100 });
    const loop = () => clock.setTimer(clock.now, loop);
    clock.setTimer(5, loop);
    expect(() => clock.advanceTo(10)).to.throw(/more than 100 timers fired at t=5/);
  });

  it('does not count timers at different instants against the guard', () => {
    const clock = new VirtualClock({ maxTimersPerInstant: 3 });
    let n = 0;
    const tick = () => {
      if (++n < 1000) clock.setTimer(clock.now + 1, tick);
    };
    clock.setTimer(0, tick);
    clock.advanceTo(5000);
    expect(n).to.equal(1000);
  });

  it('refuses to advance from inside a callback', () => {
    const clock = new VirtualClock();
    clock.setTimer(1, () => clock.advanceBy(1));
    expect(() => clock.advanceTo(5)).to.throw(/inside a timer callback/);
    // The clock is still usable afterwards.
    clock.setTimer(clock.now + 1, () => {});
    clock.advanceBy(10);
  });

  it('fires any set of timers sorted by (time, insertion order)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 60 }),
        fc.integer({ min: 0, max: 60 }),
        (times, end) => {
          const clock = new VirtualClock();
          const fired: number[] = [];
          times.forEach((t, i) => clock.setTimer(t, () => fired.push(i)));
          clock.advanceTo(end);
          const expected = times
            .map((t, i) => ({ t, i }))
            .filter(({ t }) => t <= end)
            .sort((a, b) => a.t - b.t || a.i - b.i)
            .map(({ i }) => i);
          expect(fired).to.deep.equal(expected);
        },
      ),
    );
  });
});
