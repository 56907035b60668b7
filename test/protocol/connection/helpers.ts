/** Shared bits of the unit tests of the engine's parts. */
import { expect } from 'chai';
import { HeartwireError } from '../../../src/protocol/errors.js';
import { resolveSettings } from '../../../src/protocol/connection/settings.js';
import type { Settings } from '../../../src/protocol/connection/settings.js';
import type { EngineOptions, Role } from '../../../src/protocol/types.js';

export function settings(role: Role = 'client', options: Partial<EngineOptions> = {}): Settings {
  return resolveSettings({ role, seed: 1, ...options });
}

/** The `code` of the HeartwireError `run` throws. */
export function thrownCode(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(HeartwireError);
    return (error as HeartwireError).code;
  }
  expect.fail('expected a HeartwireError');
}
