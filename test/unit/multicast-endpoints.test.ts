/** Group endpoints (RFC 9622 §6.1.1): what they accept, what they refuse, and which stacks may serve them. */
import { describe, expect, it } from 'vitest';
import { LocalEndpoint, RemoteEndpoint } from '../../src/endpoints.js';
import { isMulticast } from '../../src/paths/multicast.js';
import { judgeStack } from '../../src/selection/suitability.js';
import { SecurityParameters } from '../../src/security.js';
import { TransportProperties } from '../../src/properties.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { udpDriver } from '../../transports/udp/index.js';

describe('multicast endpoints', () => {
  it('knows groups of both families', () => {
    for (const g of ['224.0.0.1', '233.252.0.1', '239.255.255.255', 'ff02::1', 'ff15::db8:1', 'ffff::']) expect(isMulticast(g), g).toBe(true);
    for (const u of ['223.255.255.255', '240.0.0.1', '192.0.2.1', 'ff::1', 'fe80::1', '::1', '2001:db8::ff00']) expect(isMulticast(u), u).toBe(false);
  });

  it('builds any-source and source-specific local endpoints and reads them back', () => {
    const asm = new LocalEndpoint().withAnySourceMulticastGroupIp('233.252.0.1').withPort(5004).withInterface('eth0');
    expect(asm.toJSON()).toMatchObject({ multicastGroup: '233.252.0.1', port: 5004, interface: 'eth0' });
    expect(asm.multicastSource).toBeUndefined();
    const ssm = asm.withSingleSourceMulticastGroupIp('232.1.2.3', '192.0.2.9');
    expect([ssm.multicastGroup, ssm.multicastSource]).toEqual(['232.1.2.3', '192.0.2.9']);
    expect(LocalEndpoint.from(ssm.toInit()).equals(ssm)).toBe(true);
    expect(ssm.withAnySourceMulticastGroupIp('233.252.0.2').multicastSource).toBeUndefined();
    expect(LocalEndpoint.from({ multicastGroup: 'FF15::DB8:1', port: 1 }).multicastGroup).toBe('ff15::db8:1');
  });

  it('makes a remote group endpoint whose address is the group, with a hop limit', () => {
    const r = RemoteEndpoint.from({ multicastGroup: '233.252.0.1', port: 5004 }).withHopLimit(8);
    expect([r.ipAddress, r.isMulticast, r.hopLimit]).toEqual(['233.252.0.1', true, 8]);
    expect(RemoteEndpoint.from('192.0.2.1:9').withMulticastGroupIp('ff02::1').ipAddress).toBe('ff02::1');
    expect(RemoteEndpoint.from('233.252.0.9:9').isMulticast).toBe(true);
    expect(RemoteEndpoint.from('192.0.2.9:9').isMulticast).toBe(false);
  });

  it('refuses what is not a group, a multicast source, mixed families, a bad hop limit, and an address with a group', () => {
    expect(() => new LocalEndpoint({ multicastGroup: '192.0.2.1' })).toThrow(/multicastGroup "192.0.2.1" is not a multicast group/);
    expect(() => new LocalEndpoint({ multicastGroup: '233.252.0.1', multicastSource: '233.252.0.2' })).toThrow(/multicastSource .* is a multicast address/);
    expect(() => new LocalEndpoint({ multicastGroup: '233.252.0.1', multicastSource: '2001:db8::1' })).toThrow(/different IP families/);
    expect(() => new LocalEndpoint({ multicastSource: '192.0.2.1' })).toThrow(/needs a multicastGroup/);
    expect(() => new LocalEndpoint({ multicastGroup: '233.252.0.1', ipAddress: '192.0.2.1' })).toThrow(/either an address or a multicast group/);
    expect(() => RemoteEndpoint.from({ multicastGroup: '233.252.0.1', ipAddress: '233.252.0.2' })).toThrow(TypeError);
    expect(() => RemoteEndpoint.from({ multicastSource: '192.0.2.1', ipAddress: '233.252.0.2' } as never)).toThrow(/unknown remote endpoint field "multicastSource"/);
    for (const bad of [-1, 256, 1.5, '8']) expect(() => RemoteEndpoint.from({ ipAddress: '233.252.0.1', hopLimit: bad as number })).toThrow(RangeError);
  });

  it('leaves only stacks that can multicast for a group', () => {
    const ctx = { properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled(), framerCount: 1, multicast: true };
    expect(judgeStack(udpDriver, ctx)).toEqual({ ok: true });
    expect(judgeStack(tcpDriver, { ...ctx, properties: new TransportProperties() })).toEqual({ ok: false, reason: 'the endpoint is a multicast group and tcp cannot multicast' });
  });
});
