/**
 * The path branch inside a selection (fake driver, real interface list of this host): an impossible
 * interface constraint fails before any attempt, naming the interface; useTemporaryLocalAddress no longer
 * makes every stack unsuitable; the report shows the interface each candidate used.
 */
import { describe, expect, it } from 'vitest';
import { RemoteEndpoint } from '../../src/endpoints.js';
import { EstablishmentError } from '../../src/errors.js';
import { localAddresses } from '../../src/paths/interfaces.js';
import { createScope } from '../../src/policy/chokepoint.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { DEFAULT_RACING } from '../../src/selection/racing-options.js';
import { select } from '../../src/selection/pipeline.js';
import { explainReport } from '../../src/report.js';
import { fakeDriver } from '../helpers/fake-driver.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { allowAll } from '../helpers/policy.js';

function input(clock: ManualClock, properties: TransportProperties, drivers: ReturnType<typeof fakeDriver>[]) {
  return {
    scope: createScope({ tenant: 't', policy: allowAll }),
    remote: RemoteEndpoint.from('127.0.0.1:9'),
    properties: properties.freeze(),
    security: SecurityParameters.disabled(),
    framerCount: 0,
    driverOptions: {},
    racing: DEFAULT_RACING,
    clock,
    drivers,
  };
}

describe('path branch in a selection', () => {
  it('fails with ERR_TAPS_PATH_UNAVAILABLE before any attempt when a required interface does not exist', async () => {
    const clock = new ManualClock();
    const tcp = fakeDriver({ id: 'tcp', clock });
    const err = await select(input(clock, new TransportProperties({ interface: [['require', 'nosuch0']] }), [tcp])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EstablishmentError);
    expect((err as EstablishmentError).code).toBe('ERR_TAPS_PATH_UNAVAILABLE');
    expect((err as Error).message).toMatch(/interface nosuch0 is required/);
    expect(tcp.attempts).toEqual([]);
  });

  it('prohibiting useTemporaryLocalAddress leaves the stacks suitable (IPv4 has no temporary address to avoid)', async () => {
    const clock = new ManualClock();
    const tcp = fakeDriver({ id: 'tcp', clock });
    const p = select(input(clock, new TransportProperties({ useTemporaryLocalAddress: 'prohibit' }), [tcp]));
    await clock.advance(1);
    const r = await p;
    expect(r.candidate.fate).toBe('won');
  });

  it('binds a candidate to the required interface and says so in the report', async () => {
    const lo = localAddresses().find((a) => a.address === '127.0.0.1')!.interface;
    const clock = new ManualClock();
    const tcp = fakeDriver({ id: 'tcp', clock });
    const p = select(input(clock, new TransportProperties({ interface: [['require', lo]] }), [tcp]));
    await clock.advance(1);
    const r = await p;
    expect(r.candidate).toMatchObject({ fate: 'won', interface: lo, localAddress: '127.0.0.1' });
    expect(explainReport(r.report)).toContain(`127.0.0.1:9 via ${lo} (127.0.0.1) won`);
  });
});
