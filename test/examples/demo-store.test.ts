import { expect } from 'chai';
import { storeChoice } from '../../examples/demo/rolling.js';

describe("examples/demo: the rolling demo's store", () => {
  it('uses Redis only when both redis-server and the ioredis client are there', () => {
    expect(storeChoice(true, true)).to.deep.equal({ redis: true, note: [] });
  });

  it('an installed package (no ioredis, a devDependency) falls back to memory and says why', () => {
    const choice = storeChoice(true, false);
    expect(choice.redis).to.equal(false);
    expect(choice.note.join('\n')).to.match(/ioredis client is not installed/);
  });

  it('no redis-server: memory, and the note names what to install', () => {
    const choice = storeChoice(false, true);
    expect(choice.redis).to.equal(false);
    expect(choice.note.join('\n')).to.match(/redis-server is not installed/);
  });
});
