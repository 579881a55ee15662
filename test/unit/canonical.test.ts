/**
 * Canonicalisation: a table of hostile and ordinary inputs, and properties
 * checked against Node's own idea of an address (WHATWG URL, net.isIP and
 * dns.lookup on numeric input — which never touches the network: every
 * string handed to dns.lookup here is numeric by construction).
 */
import { lookup } from 'node:dns/promises';
import { isIP, SocketAddress } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalAddress, canonicalHost, canonicalUrl, endsInNumber, formatIPv4, formatIPv6, knownAddress, knownHost, parseIPv6 } from '../../src/policy/canonical.js';

const host = (s: string) => {
  const h = canonicalHost(s);
  return h.ok ? `${h.kind}:${h.host}${h.kind === 'ipv6' && h.zone ? `%${h.zone}` : ''}` : 'reject';
};

describe('canonicalHost: table', () => {
  const table: Array<[string, string]> = [
    // IPv4 in every form the resolver accepts
    ['127.0.0.1', 'ipv4:127.0.0.1'],
    ['127.1', 'ipv4:127.0.0.1'],
    ['127.0.1', 'ipv4:127.0.0.1'],
    ['0x7f.1', 'ipv4:127.0.0.1'],
    ['0X7F.0.0.1', 'ipv4:127.0.0.1'],
    ['2130706433', 'ipv4:127.0.0.1'],
    ['0x7f000001', 'ipv4:127.0.0.1'],
    ['017700000001', 'ipv4:127.0.0.1'],
    ['0177.0.0.1', 'ipv4:127.0.0.1'],
    ['012.0.0.1', 'ipv4:10.0.0.1'],
    ['0.0.0.0', 'ipv4:0.0.0.0'],
    ['0', 'ipv4:0.0.0.0'],
    ['127.0.0.1.', 'ipv4:127.0.0.1'],
    ['169.254.43518', 'ipv4:169.254.169.254'],
    ['0xa9.0xfe.0xa9.0xfe', 'ipv4:169.254.169.254'],
    ['２５５.２５５.２５５.２５５', 'ipv4:255.255.255.255'],
    ['127。0。0。1', 'ipv4:127.0.0.1'],
    // numeric but not an address: rejected, never a name
    ['256.0.0.1', 'reject'],
    ['1.2.3.4.5', 'reject'],
    ['4294967296', 'reject'],
    ['0x100000000', 'reject'],
    ['08.0.0.1', 'reject'],
    ['1.2.3.0x', 'ipv4:1.2.3.0'],
    ['example.123', 'reject'],
    ['1..1', 'reject'],
    // names
    ['Example.COM', 'name:example.com'],
    ['example.com.', 'name:example.com'],
    ['example.com..', 'reject'],
    ['bücher.de', 'name:xn--bcher-kva.de'],
    ['xn--bcher-kva.de', 'name:xn--bcher-kva.de'],
    ['xn--zz', 'reject'],
    // IDNA is ours (UTS #46, pinned), not Node's: these answers are the same on Node 20, 22 and 24.
    ['xn--zz.com', 'reject'],
    ['a.xn--zz', 'reject'],
    ['xn--a.com', 'reject'],
    ['xn--.com', 'reject'],
    ['XN--BCHER-KVA.DE', 'name:xn--bcher-kva.de'],
    ['faß.de', 'name:xn--fa-hia.de'],
    ['ÄÖ.com', 'name:xn--4ca0b.com'],
    ['xn--ls8h.la', 'name:xn--ls8h.la'],
    ['a\u200db.com', 'reject'],
    ['ex_ample.xn--zz', 'reject'],
    ['_sip._tcp.example.com', 'name:_sip._tcp.example.com'],
    ['localhost', 'name:localhost'],
    ['0x7g.1', 'reject'],
    ['0x7g', 'name:0x7g'],
    ['1.2.3.4x', 'name:1.2.3.4x'],
    ['a'.repeat(64) + '.com', 'reject'],
    [`${'a.'.repeat(126)}a`, 'name:' + `${'a.'.repeat(126)}a`],
    [`${'a.'.repeat(126)}ab`, 'reject'],
    // hostile authorities
    ['127.0.0.1@evil.com', 'reject'],
    ['evil.com\\@127.0.0.1', 'reject'],
    ['evil.com/127.0.0.1', 'reject'],
    ['evil.com#x', 'reject'],
    ['evil.com?x', 'reject'],
    ['evil.com ', 'reject'],
    [' evil.com', 'reject'],
    ['evil\tcom', 'reject'],
    ['evil.com\0.127.0.0.1', 'reject'],
    ['evil.com\u0000', 'reject'],
    ['%31%32%37.0.0.1', 'reject'],
    ['a%41.com', 'reject'],
    ['evil.com:80', 'reject'],
    ['', 'reject'],
    ['.', 'reject'],
    ['*.example.com', 'reject'],
    // IPv6
    ['::1', 'ipv6:::1'],
    ['[::1]', 'ipv6:::1'],
    ['0:0:0:0:0:0:0:1', 'ipv6:::1'],
    ['[0000:0000:0000:0000:0000:0000:0000:0001]', 'ipv6:::1'],
    ['2001:DB8::1', 'ipv6:2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', 'ipv6:2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', 'ipv6:2001:db8:0:1:1:1:1:1'],
    ['::ffff:127.0.0.1', 'ipv6:::ffff:127.0.0.1'],
    ['::ffff:7f00:1', 'ipv6:::ffff:127.0.0.1'],
    ['::127.0.0.1', 'ipv6:::127.0.0.1'],
    ['64:ff9b::169.254.169.254', 'ipv6:64:ff9b::a9fe:a9fe'],
    ['::ffff:0127.0.0.1', 'reject'],
    ['::ffff:127.1', 'reject'],
    ['fe80::1%eth0', 'ipv6:fe80::1%eth0'],
    ['[fe80::1%25eth0]', 'ipv6:fe80::1%eth0'],
    ['::1%eth0', 'reject'],
    ['fe80::1%', 'reject'],
    ['fe80::1%eth0/x', 'reject'],
    ['1:2:3:4:5:6:7:8:9', 'reject'],
    ['1::2::3', 'reject'],
    ['[::1', 'reject'],
    ['[::1]:80', 'reject'],
    ['12345::', 'reject'],
    [':::', 'reject'],
  ];
  it.each(table)('%j → %s', (input, expected) => {
    expect(host(input)).toBe(expected);
  });

  it('refuses non-strings', () => {
    for (const v of [undefined, null, 1, {}, ['127.0.0.1']]) expect(canonicalHost(v).ok).toBe(false);
  });

  it('canonicalAddress refuses names', () => {
    expect(canonicalAddress('localhost').ok).toBe(false);
    expect(canonicalAddress('127.1')).toMatchObject({ ok: true, host: '127.0.0.1' });
  });
});

describe('knownHost: canonicalHost remembered for the library\'s own callers', () => {
  it('answers as canonicalHost does, keeps only successes, and never hands its shared result to canonicalHost\'s callers', () => {
    for (const h of ['LocalHost', '::FFFF:7F00:1', '0x7f.1', 'fe80::1%eth0', 'Bücher.DE.', 'bad host', '']) {
      expect(knownHost(h)).toEqual(canonicalHost(h));
      expect(knownAddress(h)).toEqual(canonicalAddress(h));
    }
    expect(knownHost('::1')).toBe(knownHost('::1')); // shared
    expect(knownHost('bad host')).not.toBe(knownHost('bad host')); // a failure is not kept
    // The exported canonicalHost makes a new result each time: changing one changes nothing the library decides on.
    const mine = canonicalHost('::1') as { v6: Uint32Array };
    mine.v6[3] = 2;
    expect(canonicalHost('::1')).toMatchObject({ host: '::1' });
    expect((knownHost('::1') as { v6: Uint32Array }).v6[3]).toBe(1);
    expect(formatIPv6((knownHost('::1') as { v6: Uint32Array }).v6)).toBe('::1');
  });
});

describe('canonicalUrl: confusing URLs', () => {
  const table: Array<[string, string]> = [
    ['http://127.0.0.1@evil.com/', 'reject'],
    ['http://evil.com\\@127.0.0.1/', 'reject'],
    ['http://evil.com%2f@127.0.0.1/', 'reject'],
    ['http://user:pass@example.com/', 'reject'],
    ['http://@example.com/', 'reject'],
    [' http://example.com/', 'reject'],
    ['http://exa\tmple.com/', 'reject'],
    ['http://exa\nmple.com/', 'reject'],
    ['http://%31%32%37.0.0.1/', 'reject'],
    ['http:example.com', 'reject'],
    ['http:/example.com', 'reject'],
    ['javascript:alert(1)', 'bad-scheme'],
    ['file:///etc/passwd', 'bad-scheme'],
    ['gopher://127.0.0.1:6379/_x', 'bad-scheme'],
    ['http://0x7f.1/', 'http 127.0.0.1 80'],
    ['http://2130706433:8080/x', 'http 127.0.0.1 8080'],
    ['HTTPS://Example.COM./a?b#c', 'https example.com 443'],
    ['https://example.com:/x', 'https example.com 443'],
    ['wss://[::ffff:169.254.169.254]/', 'wss ::ffff:169.254.169.254 443'],
    ['http://[::1]:99999/', 'reject'],
    ['http://[fe80::1%25eth0]/', 'reject'],
    ['tcp://EXAMPLE.com:5/', 'tcp example.com 5'],
    ['udp://0177.0.0.1:53', 'udp 127.0.0.1 53'],
    ['http://example.com:80:80/', 'reject'],
    ['http://[::1]x/', 'reject'],
    ['http://ex ample.com/', 'reject'],
  ];
  it.each(table)('%j → %s', (input, expected) => {
    const u = canonicalUrl(input);
    const got = u.ok ? `${u.scheme} ${u.host.host} ${u.port}` : 'badScheme' in u && u.badScheme ? 'bad-scheme' : 'reject';
    expect(got).toBe(expected);
  });
});

/** An IPv4 number written as the resolver (inet_aton) writes it: 1-4 parts, each decimal, octal or hex. */
const ipv4Forms = fc
  .record({
    v: fc.integer({ min: 0, max: 0xffffffff }),
    parts: fc.integer({ min: 1, max: 4 }),
    radixes: fc.array(fc.constantFrom(10, 8, 16), { minLength: 4, maxLength: 4 }),
    upper: fc.boolean(),
  })
  .map(({ v, parts, radixes, upper }) => {
    const nums: number[] = [];
    for (let i = 0; i < parts - 1; i++) nums.push((v >>> (24 - 8 * i)) & 255);
    nums.push(parts === 1 ? v : v % 256 ** (5 - parts));
    const text = nums
      .map((n, i) => {
        const r = radixes[i]!;
        if (r === 8) return `0${n.toString(8)}`;
        if (r === 16) return `${upper ? '0X' : '0x'}${upper ? n.toString(16).toUpperCase() : n.toString(16)}`;
        return String(n);
      })
      .join('.');
    return { v: v >>> 0, text };
  });

/** An IPv6 address written in one of its many legal spellings. */
const ipv6Forms = fc
  .record({
    words: fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }),
    pad: fc.boolean(),
    upper: fc.boolean(),
    dotted: fc.boolean(),
    compressAt: fc.integer({ min: 0, max: 7 }),
  })
  .map(({ words, pad, upper, dotted, compressAt }) => {
    const hex = (n: number) => {
      const s = pad ? n.toString(16).padStart(4, '0') : n.toString(16);
      return upper ? s.toUpperCase() : s;
    };
    let parts = words.map(hex);
    if (dotted) parts = [...parts.slice(0, 6), `${words[6]! >> 8}.${words[6]! & 255}.${words[7]! >> 8}.${words[7]! & 255}`];
    let text = parts.join(':');
    // Compress one run of zero pieces starting at compressAt, when there is one (and not inside the dotted tail).
    let end = compressAt;
    while (end < (dotted ? 6 : 8) && words[end] === 0) end++;
    if (end > compressAt) text = `${parts.slice(0, compressAt).join(':')}::${parts.slice(end).join(':')}`;
    const w = new Uint32Array(4);
    for (let k = 0; k < 4; k++) w[k] = ((words[2 * k]! << 16) | words[2 * k + 1]!) >>> 0;
    return { w, text };
  });

describe('canonicalHost agrees with Node on what an address is', () => {
  it('every IPv4 spelling → the same dotted quad as WHATWG URL and net.isIP', () => {
    fc.assert(
      fc.property(ipv4Forms, ({ v, text }) => {
        const h = canonicalHost(text);
        expect(h).toMatchObject({ ok: true, kind: 'ipv4', host: formatIPv4(v) });
        expect(new URL(`http://${text}/`).hostname).toBe(formatIPv4(v));
        expect(isIP(formatIPv4(v))).toBe(4);
      }),
      { numRuns: 2000 },
    );
  });

  it('dns.lookup on the same numeric spellings returns the same address (no network: numeric input)', async () => {
    await fc.assert(
      fc.asyncProperty(ipv4Forms, async ({ v, text }) => {
        const h = canonicalHost(text);
        expect(h.ok && h.kind === 'ipv4').toBe(true);
        const r = await lookup(text, { family: 4 });
        expect(r.address).toBe(formatIPv4(v));
      }),
      { numRuns: 300 },
    );
  });

  it('every IPv6 spelling → what the system writes (libuv inet_ntop), the WHATWG form once all hex, accepted by net.isIP and dns.lookup', async () => {
    await fc.assert(
      fc.asyncProperty(ipv6Forms, async ({ w, text }) => {
        const h = canonicalHost(text);
        expect(h.ok && h.kind === 'ipv6').toBe(true);
        const got = (h as { host: string }).host;
        expect(got).toBe(formatIPv6(w));
        // The spelling a socket reports for this address (RFC 5952 §5: a dotted tail for mapped and compatible).
        expect(got).toBe(new SocketAddress({ address: text, family: 'ipv6' }).address);
        expect(`[${formatIPv6(w, false)}]`).toBe(new URL(`http://[${text}]/`).hostname);
        expect(isIP(got)).toBe(6);
        expect(isIP(text)).toBe(6);
        const r = await lookup(text, { family: 6 });
        expect(formatIPv6(parseIPv6(r.address)!)).toBe(got);
      }),
      { numRuns: 300 },
    );
  });

  it('no string is a name to us but an address to WHATWG URL or net.isIP', () => {
    const alphabet = fc.constantFrom(...'0123456789abcdefxX.:[]%-_'.split(''), '0x', '..', '::');
    fc.assert(
      fc.property(fc.array(alphabet, { minLength: 1, maxLength: 24 }).map((a) => a.join('')), (s) => {
        const h = canonicalHost(s);
        let whatwg: string | undefined;
        try {
          whatwg = new URL(`http://${s}/`).hostname;
        } catch {
          whatwg = undefined;
        }
        if (h.ok && h.kind === 'name') {
          expect(isIP(h.host)).toBe(0);
          expect(endsInNumber(h.host)).toBe(false);
          if (whatwg !== undefined) expect(isIP(whatwg.replace(/^\[|\]$/g, ''))).toBe(0);
        }
        // Whatever WHATWG reads as an IPv4 address we read as the same address, or refuse.
        if (whatwg !== undefined && isIP(whatwg) === 4) {
          if (h.ok) expect(h).toMatchObject({ kind: 'ipv4', host: whatwg });
          if (!/[%:[\]]/.test(s)) expect(h.ok).toBe(true);
        }
        if (h.ok && h.kind === 'ipv4' && whatwg !== undefined && !s.includes(':')) expect(whatwg).toBe(h.host);
        if (isIP(s) !== 0 && !s.includes('%')) expect(h.ok && h.kind !== 'name').toBe(true);
      }),
      { numRuns: 5000 },
    );
  });
});
