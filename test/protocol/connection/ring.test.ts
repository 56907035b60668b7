import { expect } from 'chai';
import { Ring } from '../../../src/protocol/connection/ring.js';

describe('connection/ring: the one FIFO', () => {
  it('keeps order across growth and wrap-around, with each item its weight', () => {
    const ring = new Ring<string>(true);
    let next = 0;
    let expected = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 7; i++, next++) ring.push(`m${next}`, next * 10);
      for (let i = 0; i < 5; i++, expected++) {
        expect(ring.shift()).to.equal(`m${expected}`);
        expect(ring.shiftedWeight).to.equal(expected * 10);
      }
    }
    expect(ring.length).to.equal(next - expected);
    expect(ring.at(0)).to.equal(`m${expected}`);
    expect(ring.at(ring.length)).to.equal(undefined);
  });

  it('set, peek, discard and toArray address items from the head', () => {
    const ring = new Ring<number>();
    for (let i = 0; i < 20; i++) ring.push(i);
    ring.discard(3);
    expect(ring.peek()).to.equal(3);
    ring.set(1, -4);
    expect(ring.toArray()).to.deep.equal([3, -4, ...Array.from({ length: 15 }, (_, i) => i + 5)]);
    expect(ring.toArray(16)).to.deep.equal([19]);
  });

  it('has no storage until the first push, and drops it when a large ring empties, weights included', () => {
    const ring = new Ring<number>(true);
    const inner = ring as unknown as { items: unknown[]; weights: number[] };
    const empty = new Ring<number>(true) as unknown as { items: unknown[]; weights: number[] };
    // An idle connection's rings share one empty array each: no allocation per ring.
    expect(inner.items).to.equal(empty.items);
    expect(inner.weights).to.equal(empty.weights);
    expect(inner.items.length).to.equal(0);
    ring.push(1, 1);
    expect(inner.items.length).to.equal(16);
    expect(ring.shift()).to.equal(1);
    expect(inner.items.length).to.equal(16); // a small ring keeps its storage
    for (let i = 0; i < 5000; i++) ring.push(i, i);
    while (ring.length > 0) ring.shift();
    expect(inner.items).to.equal(empty.items);
    expect(inner.weights).to.equal(empty.weights);
    expect(empty.items.length).to.equal(0); // never written
    ring.push(7, 3);
    expect(ring.shift()).to.equal(7);
    expect(ring.shiftedWeight).to.equal(3);
    expect(ring.shift()).to.equal(undefined);
  });
});
