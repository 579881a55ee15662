/**
 * TransportProperties (RFC 9622 §6.2, App. A/B): defaults, names, values,
 * namespaced properties, contradictions, profiles, freezing and read-back.
 */
import { describe, expect, it } from 'vitest';
import { InvalidPropertiesError, isTapsError } from '../../src/errors.js';
import {
  PREFERENCE_PROPERTIES, PREFERENCES, TransportProperties, readBack, type PreferenceProperty, type PropertyName, type TransportPropertiesInit,
} from '../../src/properties.js';

/** Run fn, expect an InvalidPropertiesError, return the names of the offending properties. */
function offenders(fn: () => unknown): string[] {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InvalidPropertiesError);
  const err = caught as InvalidPropertiesError;
  expect(isTapsError(err)).toBe(true);
  expect(err.code).toBe('ERR_TAPS_INVALID_PROPERTIES');
  for (const p of err.problems) expect(err.message).toContain(p.property);
  return err.problems.map((p) => p.property);
}

// RFC 9622 §6.2 defaults (TAPS-CHECKLIST.md table).
const DEFAULTS: [PropertyName, unknown][] = [
  ['reliability', 'require'], ['preserveMsgBoundaries', 'noPreference'], ['perMsgReliability', 'noPreference'],
  ['preserveOrder', 'require'], ['zeroRttMsg', 'noPreference'], ['multistreaming', 'prefer'], ['fullChecksumSend', 'require'],
  ['fullChecksumRecv', 'require'], ['congestionControl', 'require'], ['keepAlive', 'noPreference'], ['interface', []],
  ['pvd', []], ['useTemporaryLocalAddress', 'prefer'], ['multipath', 'disabled'], ['advertisesAltaddr', false],
  ['direction', 'bidirectional'], ['softErrorNotify', 'noPreference'], ['activeReadBeforeSend', 'noPreference'],
  ['safelyReplayable', false],
];

describe('TransportProperties defaults', () => {
  it.each(DEFAULTS)('%s defaults to %j', (name, value) => {
    expect(new TransportProperties().get(name)).toEqual(value);
  });

  it('lists the five preferences and the thirteen preference properties', () => {
    expect(PREFERENCES).toEqual(['require', 'prefer', 'noPreference', 'avoid', 'prohibit']);
    expect([...PREFERENCE_PROPERTIES].sort()).toEqual([
      'activeReadBeforeSend', 'congestionControl', 'fullChecksumRecv', 'fullChecksumSend', 'keepAlive', 'multistreaming',
      'perMsgReliability', 'preserveMsgBoundaries', 'preserveOrder', 'reliability', 'softErrorNotify',
      'useTemporaryLocalAddress', 'zeroRttMsg',
    ]);
  });

  it('forListener() applies listener defaults only where nothing was set explicitly', () => {
    const l = new TransportProperties().forListener();
    expect(l.role).toBe('listen');
    expect(l.get('useTemporaryLocalAddress')).toBe('avoid');
    expect(l.get('multipath')).toBe('passive');
    const explicit = new TransportProperties({ useTemporaryLocalAddress: 'require', multipath: 'disabled' }).forListener();
    expect(explicit.get('useTemporaryLocalAddress')).toBe('require');
    expect(explicit.get('multipath')).toBe('disabled');
    expect(new TransportProperties().role).toBe('initiate');
  });
});

describe('TransportProperties names and values', () => {
  it.each([
    ['Reliability', 'reliability'], ['PRESERVEORDER', 'preserveOrder'], ['zerorttmsg', 'zeroRttMsg'], ['Direction', 'direction'],
    ['UDP.RECVBUFFERSIZE', 'udp.recvBufferSize'],
  ])('name %s is case-insensitive and stored as %s', (given, canonical) => {
    const value = canonical === 'direction' ? 'unidirectional-send' : canonical.includes('.') ? 5 : 'avoid';
    const p = new TransportProperties({ [given]: value });
    expect(p.get(canonical)).toBe(value);
    expect(p.isExplicit(canonical)).toBe(true);
    expect(Object.keys(p.toJSON())).toContain(canonical);
  });

  it.each([
    ['reliability', 'Prohibit', 'prohibit'], ['keepAlive', 'NOPREFERENCE', 'noPreference'], ['multipath', 'Active', 'active'],
    ['direction', 'UNIDIRECTIONAL-RECEIVE', 'unidirectional-receive'], ['advertisesAltaddr', true, true],
    ['interface', [['require', 'en0'], ['avoid', 'Cellular'], ['require', 'en0']], [['require', 'en0'], ['avoid', 'Cellular']]],
    ['pvd', [['prefer', 'pvd.example.net']], [['prefer', 'pvd.example.net']]],
    ['safelyReplayable', true, true], ['tcp.userTimeoutEnabled', false, false],
    ['tcp.userTimeoutChangeable', false, false], ['udp.recvBufferSize', 4194304, 4194304],
    ['ws.maxPayload', 0, 0],
  ])('accepts %s = %j', (name, value, stored) => {
    expect(new TransportProperties({ [name]: value }).get(name)).toEqual(stored);
    expect(new TransportProperties().set(name, value).get(name)).toEqual(stored);
  });

  it.each([
    ['reliability', 'required'], ['reliability', true], ['reliability', 1], ['reliability', null], ['keepAlive', 'no preference'],
    ['multipath', 'on'], ['direction', 'send'], ['advertisesAltaddr', 'false'], ['interface', 'en0'], ['interface', [['require']]],
    ['interface', [['maybe', 'en0']]], ['interface', [['require', '']]], ['interface', [['require', 'en0'], ['prohibit', 'en0']]],
    ['pvd', [['prefer', 'a\u0000b']]], ['tcp.userTimeoutValue', -1], ['tcp.userTimeoutValue', '30'], ['tcp.userTimeoutValue', Infinity],
    ['tcp.userTimeoutValue', 30], ['tcp.userTimeoutEnabled', true], ['tcp.userTimeoutEnabled', 'yes'], ['udp.recvBufferSize', 0], ['udp.recvBufferSize', 1.5], ['ws.maxPayload', -1],
    ['safelyReplayable', 'true'],
  ])('rejects %s = %j with InvalidPropertiesError naming it', (name, value) => {
    expect(offenders(() => new TransportProperties({ [name]: value }))).toEqual([name]);
    expect(offenders(() => new TransportProperties().set(name, value))).toEqual([name]);
  });

  it('collects every offender into one error', () => {
    const names = offenders(
      () => new TransportProperties({ reliabilty: 'require', preserveOrder: 'maybe', 'tcp.nope': 1, 'foo.bar': 2, multipath: 3, 'udp.recvBufferSize': -5 } as never),
    );
    expect(names.sort()).toEqual(['foo.bar', 'multipath', 'preserveOrder', 'reliabilty', 'tcp.nope', 'udp.recvBufferSize']);
  });

  it('reports a name given twice under different spellings', () => {
    expect(offenders(() => new TransportProperties({ reliability: 'require', Reliability: 'avoid' } as never))).toEqual(['reliability']);
  });

  it('distinguishes unknown plain and unknown protocol-specific names', () => {
    const err = (() => {
      try {
        new TransportProperties({ frobnicate: 'require', 'quic.frobnicate': 1 } as never);
      } catch (e) {
        return e as InvalidPropertiesError;
      }
      throw new Error('no error');
    })();
    expect(err.problems).toEqual([
      { property: 'frobnicate', reason: 'unknown property' },
      { property: 'quic.frobnicate', reason: 'unknown protocol-specific property' },
    ]);
  });

  it('skips undefined values in the init object but refuses set(name, undefined)', () => {
    expect(new TransportProperties({ reliability: undefined }).isExplicit('reliability')).toBe(false);
    expect(offenders(() => new TransportProperties().set('reliability', undefined))).toEqual(['reliability']);
  });

  it.each([[[]], ['reliability'], [42], [new Map([['reliability', 'require']])], [() => 1]])('rejects a non-plain init %j with TypeError', (init) => {
    expect(() => new TransportProperties(init as never)).toThrow(TypeError);
  });

  it('does not let prototype names through', () => {
    expect(offenders(() => new TransportProperties(JSON.parse('{"__proto__": "require", "constructor": "avoid"}')))).toEqual(['__proto__', 'constructor']);
    expect(offenders(() => new TransportProperties().get('toString'))).toEqual(['toString']);
  });
});

describe('TransportProperties accessors', () => {
  it('preference() and the App. A.1 convenience setters', () => {
    const p = new TransportProperties();
    const levels: [(n: PreferenceProperty) => TransportProperties, string][] = [
      [(n) => p.require(n), 'require'], [(n) => p.prefer(n), 'prefer'], [(n) => p.noPreference(n), 'noPreference'],
      [(n) => p.avoid(n), 'avoid'], [(n) => p.prohibit(n), 'prohibit'],
    ];
    for (const [setter, level] of levels) {
      expect(setter('keepAlive')).toBe(p);
      expect(p.preference('keepAlive')).toBe(level);
    }
    expect(offenders(() => p.require('direction' as PreferenceProperty))).toEqual(['direction']);
    expect(offenders(() => p.preference('nope' as PreferenceProperty))).toEqual(['nope']);
  });

  it('reset() restores the default', () => {
    const p = new TransportProperties({ keepAlive: 'require' });
    expect(p.reset('KEEPALIVE').get('keepAlive')).toBe('noPreference');
    expect(p.isExplicit('keepAlive')).toBe(false);
  });

  it('namespaced() returns one namespace without its prefix, frozen', () => {
    const p = new TransportProperties({ 'tcp.userTimeoutChangeable': false, 'TCP.userTimeoutEnabled': false, 'udp.recvBufferSize': 1024 });
    expect({ ...p.namespaced('tcp') }).toEqual({ userTimeoutChangeable: false, userTimeoutEnabled: false });
    expect({ ...p.namespaced('UDP') }).toEqual({ recvBufferSize: 1024 });
    expect({ ...p.namespaced('quic') }).toEqual({});
    expect(Object.isFrozen(p.namespaced('tcp'))).toBe(true);
    expect(p.get('tcp.userTimeoutValue')).toBeUndefined();
  });

  it('defineNamespaced() lets a driver add a property, and refuses bad or conflicting definitions', () => {
    const validator = (v: unknown) => (v === 'fast' || v === 'slow' ? undefined : 'must be fast or slow');
    TransportProperties.defineNamespaced('_test.mode', validator);
    TransportProperties.defineNamespaced('_test.mode', validator); // idempotent
    expect(new TransportProperties({ '_TEST.MODE': 'fast' }).namespaced('_test')).toEqual({ mode: 'fast' });
    expect(offenders(() => new TransportProperties({ '_test.mode': 'medium' }))).toEqual(['_test.mode']);
    expect(() => TransportProperties.defineNamespaced('_test.mode', () => undefined)).toThrow(/already defined/);
    expect(() => TransportProperties.defineNamespaced('nodot', validator)).toThrow(TypeError);
    expect(() => TransportProperties.defineNamespaced('a.b.c', validator)).toThrow(TypeError);
    expect(() => TransportProperties.defineNamespaced('quic.x', 'no' as never)).toThrow(TypeError);
    expect(TransportProperties.namespacedNames()).toContain('tcp.userTimeoutValue');
  });

  it('clone() is independent; freeze() is a validated read-only copy', () => {
    const p = new TransportProperties({ keepAlive: 'prefer' });
    const c = p.clone().avoid('keepAlive');
    expect(p.get('keepAlive')).toBe('prefer');
    expect(c.get('keepAlive')).toBe('avoid');
    const f = p.freeze();
    expect(f).not.toBe(p);
    expect(f.frozen).toBe(true);
    expect(f.freeze()).toBe(f);
    expect(Object.isFrozen(f)).toBe(true);
    expect(() => f.set('keepAlive', 'avoid')).toThrow(TypeError);
    expect(() => f.require('keepAlive')).toThrow(/frozen/);
    expect(() => f.reset('keepAlive')).toThrow(TypeError);
    p.avoid('keepAlive');
    expect(f.get('keepAlive')).toBe('prefer');
    expect(f.clone().frozen).toBe(false);
    expect(f.forListener().frozen).toBe(true);
  });

  it('toJSON() and entries() give every effective value', () => {
    const p = new TransportProperties({ 'udp.recvBufferSize': 3 });
    const json = p.toJSON();
    expect(Object.keys(json)).toHaveLength(DEFAULTS.length + 1);
    expect(json['udp.recvBufferSize']).toBe(3);
    expect(new Map(p.entries()).get('reliability')).toBe('require');
    expect(new TransportProperties(JSON.parse(JSON.stringify(json)) as Record<string, unknown>).toJSON()).toEqual(json);
  });

  it('a TransportProperties passed to the constructor is copied', () => {
    const p = new TransportProperties({ keepAlive: 'prefer' }).forListener();
    const q = new TransportProperties(p);
    expect(q.get('keepAlive')).toBe('prefer');
    expect(q.role).toBe('listen');
  });
});

describe('contradictions (RFC 9623 §3.1)', () => {
  it('reliability prohibit with perMsgReliability require names both', () => {
    expect(offenders(() => new TransportProperties({ reliability: 'prohibit', perMsgReliability: 'require' })).sort()).toEqual(['perMsgReliability', 'reliability']);
  });

  it('set() may pass through a contradiction; validate() and freeze() report it', () => {
    const p = new TransportProperties().prohibit('reliability').require('perMsgReliability');
    expect(offenders(() => p.validate()).sort()).toEqual(['perMsgReliability', 'reliability']);
    expect(offenders(() => p.freeze()).sort()).toEqual(['perMsgReliability', 'reliability']);
    expect(p.noPreference('perMsgReliability').validate()).toBe(p);
  });

  it('value problems and contradictions come in the same error', () => {
    const names = offenders(() => new TransportProperties({ reliability: 'prohibit', perMsgReliability: 'require', keepAlive: 'x' } as never));
    expect(names.sort()).toEqual(['keepAlive', 'perMsgReliability', 'reliability']);
  });

  it.each([
    [{ reliability: 'prohibit', preserveOrder: 'require' }],
    [{ reliability: 'prohibit', zeroRttMsg: 'require' }],
    [{ reliability: 'prohibit', multistreaming: 'require' }],
    [{ reliability: 'require', congestionControl: 'prohibit' }],
    [{ interface: [['require', 'Wi-Fi'], ['require', 'en0']] }],
    [{ reliability: 'avoid', perMsgReliability: 'require' }],
    [{ direction: 'unidirectional-receive', zeroRttMsg: 'require' }],
  ])('%j is not a contradiction', (init) => {
    expect(() => new TransportProperties(init as TransportPropertiesInit).validate()).not.toThrow();
  });

  it.each([
    [{ direction: 'unidirectional-receive', zeroRttMsg: 'require' }, 'initiate', ['direction', 'zeroRttMsg']],
    [{ direction: 'unidirectional-send', activeReadBeforeSend: 'require' }, 'initiate', ['activeReadBeforeSend', 'direction']],
    [{ direction: 'unidirectional-receive', activeReadBeforeSend: 'require' }, 'listen', ['activeReadBeforeSend', 'direction']],
  ] as const)('%j contradicts for %s', (init, role, names) => {
    const p = new TransportProperties(init);
    expect(offenders(() => p.validate(role)).sort()).toEqual(names);
    expect(() => p.validate('rendezvous')).not.toThrow();
  });

  it('validate() refuses an unknown role', () => {
    expect(() => new TransportProperties().validate('connect' as never)).toThrow(TypeError);
  });
});

describe('profiles (RFC 9622 App. B.2)', () => {
  const rows: [string, () => TransportProperties, Record<string, unknown>][] = [
    ['reliable-inorder-stream', TransportProperties.reliableInorderStream, { reliability: 'require', preserveOrder: 'require', congestionControl: 'require', preserveMsgBoundaries: 'noPreference' }],
    ['reliable-message', TransportProperties.reliableMessage, { reliability: 'require', preserveOrder: 'require', congestionControl: 'require', preserveMsgBoundaries: 'require' }],
    ['unreliable-datagram', TransportProperties.unreliableDatagram, { reliability: 'avoid', preserveOrder: 'avoid', congestionControl: 'noPreference', preserveMsgBoundaries: 'require', safelyReplayable: true }],
  ];
  it.each(rows)('%s matches the RFC table and leaves the rest at defaults', (name, make, table) => {
    for (const p of [make(), TransportProperties.profile(name as never)]) {
      const json = p.toJSON();
      for (const [k, v] of Object.entries(table)) {
        expect(json[k]).toBe(v);
        expect(p.isExplicit(k)).toBe(true);
      }
      for (const [k, v] of DEFAULTS) if (!(k in table)) expect(json[k]).toEqual(v);
      expect(p.frozen).toBe(false);
    }
  });
  it('profile() refuses an unknown name', () => {
    expect(() => TransportProperties.profile('fast' as never)).toThrow(RangeError);
  });
});

describe('readBack (RFC 9622 §6.2: preferences read back as booleans)', () => {
  const provided = Object.fromEntries(PREFERENCE_PROPERTIES.map((n) => [n, n === 'reliability' || n === 'preserveOrder'])) as Record<PreferenceProperty, boolean>;
  it('turns each preference into what the stack provides and keeps the rest', () => {
    const r = readBack(new TransportProperties({ keepAlive: 'prefer', direction: 'unidirectional-send' }), provided);
    expect(r.reliability).toBe(true);
    expect(r.keepAlive).toBe(false);
    expect(r.direction).toBe('unidirectional-send');
    expect(r.multipath).toBe('disabled');
    expect(Object.isFrozen(r)).toBe(true);
  });
  it('refuses a missing or non-boolean entry', () => {
    const { keepAlive: _k, ...missing } = provided;
    expect(() => readBack(new TransportProperties(), missing as never)).toThrow(/provided.keepAlive/);
    expect(() => readBack({} as never, provided)).toThrow(TypeError);
  });
});

describe('TransportProperties revision (what lets a Preconnection reuse its frozen snapshot)', () => {
  it('counts set() and reset(), and a frozen copy keeps the values of the revision it was taken at', () => {
    const p = new TransportProperties();
    const r0 = p.revision;
    p.set('multistreaming', 'require');
    expect(p.revision).toBe(r0 + 1);
    const frozen = p.freeze();
    p.reset('multistreaming');
    expect(p.revision).toBe(r0 + 2);
    expect(frozen.get('multistreaming')).toBe('require');
    expect(p.get('multistreaming')).toBe('prefer');
    expect(() => frozen.set('multistreaming', 'avoid')).toThrow(TypeError);
  });
});
