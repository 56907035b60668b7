/**
 * The committed `src/protocol/proto-descriptor.ts` must be exactly what `npm run gen:proto`
 * produces from `proto/*.proto` now, and must agree with the TypeScript shapes.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { buildDescriptor, generateDescriptorModule, OUTPUT_FILE } from '../../scripts/gen-proto.mjs';
import {
  decodeClose,
  decodeCloseAck,
  decodeErrorBody,
  decodeGoAway,
  decodeHello,
  decodeWelcome,
} from '../../src/protocol/messages.js';
import { descriptor } from '../../src/protocol/proto-descriptor.js';

interface MessageDescriptor {
  fields: Record<string, { id: number }>;
}

function messages(): Record<string, MessageDescriptor> {
  const root = descriptor as unknown as {
    nested: { heartwire: { nested: { v1: { nested: Record<string, MessageDescriptor> } } } };
  };
  return root.nested.heartwire.nested.v1.nested;
}

describe('proto descriptor', () => {
  it('is up to date with proto/*.proto (run `npm run gen:proto`)', () => {
    const regenerated = JSON.parse(JSON.stringify(buildDescriptor().descriptor)) as unknown;
    expect(descriptor).to.deep.equal(regenerated);
  });

  it('is byte for byte the generated module', () => {
    expect(readFileSync(OUTPUT_FILE, 'utf8')).to.equal(generateDescriptorModule());
  });

  it('has exactly the fields that messages.ts maps, for each control message', () => {
    const decoders: Record<string, (bytes: Uint8Array) => object> = {
      Hello: decodeHello,
      Welcome: decodeWelcome,
      GoAway: decodeGoAway,
      Close: decodeClose,
      CloseAck: decodeCloseAck,
      Error: decodeErrorBody,
    };
    // Optional fields are present in a decoded message only when stated (not 0).
    const optional: Record<string, string[]> = { Hello: ['sendQueueLimit'], Welcome: ['sendQueueLimit'] };
    const all = messages();
    for (const [name, decode] of Object.entries(decoders)) {
      expect(Object.keys(all[name].fields).sort(), name).to.deep.equal(
        [...Object.keys(decode(new Uint8Array(0))), ...(optional[name] ?? [])].sort(),
      );
    }
  });
});
