/**
 * Programmer errors in a Preconnection's init are thrown at once, naming the
 * argument: a missing scope, unknown keys (with the key meant), misspelt
 * property names (with the name meant); and the suggestion helper itself.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidPropertiesError } from '../../src/errors.js';
import { Host, Preconnection, TransportProperties } from '../../src/index.js';
import { closest, didYouMean } from '../../src/suggest.js';

const host = new Host();
host.setPolicy('t', 'allow tcp://@loopback:*');
const scope = await host.tenant('t');
afterAll(() => host.close());

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('did not throw');
}

describe('Preconnection init', () => {
  it('a missing scope is a synchronous TypeError naming it', () => {
    const err = thrown(() => new Preconnection({ remote: 'localhost:1' } as never));
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toMatch(/^scope is required/);
  });

  it('unknown keys are a TypeError naming each, with the key meant', () => {
    const err = thrown(() => new Preconnection({ scope, remoteEndpoint: 'localhost:1', transportProperties: {}, framer: [] } as never));
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toContain('"remoteEndpoint" (did you mean remote?)');
    expect(err.message).toContain('"transportProperties" (did you mean properties?)');
    expect(err.message).toContain('"framer" (did you mean framers?)');
  });

  it('unknown initiate() options are a rejected TypeError before anything starts', async () => {
    const pre = new Preconnection({ scope, remote: 'localhost:1' });
    const err = (await pre.initiate({ timeOut: 10 } as never).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(TypeError);
    expect(err.message).toContain('"timeOut" (did you mean timeout?)');
  });

  it('initiate() options that are not an object, or a timeout that is not a positive number, reject before anything starts; the timeout is read once', async () => {
    const pre = new Preconnection({ scope, remote: 'localhost:1' });
    for (const bad of [null, 5, 'x']) expect(await pre.initiate(bad as never).catch((e: unknown) => e)).toBeInstanceOf(TypeError);
    for (const timeout of [0, -1, Number.NaN, '5']) {
      const err = (await pre.initiate({ timeout } as never).catch((e: unknown) => e)) as Error;
      expect(err).toBeInstanceOf(RangeError);
      expect(err.message).toMatch(/^options\.timeout must be a positive number of ms/);
    }
    let reads = 0;
    const options = { get timeout(): number { return ++reads === 1 ? -1 : 1000; } };
    expect(await pre.initiate(options).catch((e: unknown) => e)).toBeInstanceOf(RangeError);
    expect(reads).toBe(1);
  });

  it('a misspelt property name gets the name meant, generic and protocol-specific', () => {
    const err = thrown(() => new Preconnection({ scope, properties: { reliabilty: 'require', 'tcp.userTimeoutValu': 3, zzz: 'prefer' } as never }));
    expect(err).toBeInstanceOf(InvalidPropertiesError);
    const reasons = Object.fromEntries((err as InvalidPropertiesError).problems.map((p) => [p.property, p.reason]));
    expect(reasons).toEqual({
      reliabilty: 'unknown property (did you mean reliability?)',
      'tcp.userTimeoutValu': 'unknown protocol-specific property (did you mean tcp.userTimeoutValue?)',
      zzz: 'unknown property',
    });
    expect(() => new TransportProperties().set('preserveOrdr', 'require')).toThrow('did you mean preserveOrder?');
  });

  it('driverOptions entries must be objects', () => {
    expect(() => new Preconnection({ scope, driverOptions: { tcp: 5 } as never })).toThrow(/driverOptions\["tcp"\] must be an object/);
  });
});

describe('suggestions', () => {
  it('the closest name within a third of the length, or one the input starts or ends with', () => {
    expect(closest('reliabilty', ['reliability', 'preserveOrder'])).toBe('reliability');
    expect(closest('MULTISTREAMING', ['multistreaming'])).toBe('multistreaming');
    expect(closest('localEndpoint', ['remote', 'local'])).toBe('local');
    expect(closest('xyz', ['reliability'])).toBeUndefined();
    expect(didYouMean('--jsn', ['--json', '--ascii'])).toBe(' (did you mean --json?)');
    expect(didYouMean('a'.repeat(100), ['a'])).toBe('');
  });
});
