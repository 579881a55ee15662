/**
 * The brand at run time: every driver socket takes its address from the kit's
 * `targetAddress` (transports/kit/dial.ts), which accepts only a target a
 * guard minted, for a use and protocol that kind of socket serves. Called
 * directly, outside any scope's network, with a lookalike object or a real
 * target granted for another use or transport, no driver and no exported dial
 * helper opens a socket: `net`, `tls` and `dgram` are instrumented here, and
 * the loopback listeners each target names count what reaches them (zero).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectAttempt, Driver, ListenAttempt } from '../../src/driver.js';
import { LocalEndpoint } from '../../src/endpoints.js';
import type { CheckedTarget, NetworkUse, PolicyProtocol } from '../../src/policy/index.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { clientHandshake } from '../../transports/kit/tls-client.js';
import { tlsClientOptions } from '../../transports/kit/tls-options.js';
import { httpDriver } from '../../transports/http/index.js';
import { quicDriver } from '../../transports/quic/index.js';
import { bindServer, connectTcp, tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { connectUdp, listenUdp, udpDriver } from '../../transports/udp/index.js';
import { webtransportH2Driver } from '../../transports/webtransport/index.js';
import { wsDriver } from '../../transports/websocket/index.js';
import { testCertificate } from '../helpers/certs.js';
import { allowAll, checked, connectAttempt, scopeFor } from '../helpers/policy.js';

const cert = testCertificate();
const opened: string[] = [];
const restore: (() => void)[] = [];

/** Record every socket Node is asked to open (TCP connect/listen, TLS connect, UDP bind/connect/send). */
function instrument(): void {
  const wrap = <T extends object>(proto: T, name: string, label: string): void => {
    const p = proto as Record<string, (...a: unknown[]) => unknown>;
    const orig = p[name]!;
    p[name] = function (this: unknown, ...args: unknown[]) {
      opened.push(label);
      return orig.apply(this, args);
    };
    restore.push(() => (p[name] = orig));
  };
  wrap(net.Socket.prototype, 'connect', 'tcp connect');
  wrap(net.Server.prototype, 'listen', 'tcp listen');
  wrap(dgram.Socket.prototype, 'bind', 'udp bind');
  wrap(dgram.Socket.prototype, 'connect', 'udp connect');
  wrap(dgram.Socket.prototype, 'send', 'udp send');
  wrap(tls as unknown as object, 'connect', 'tls connect');
}

interface Counter { port: number; reached: number; close(): Promise<void> }
async function tcpCounter(): Promise<Counter> {
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    c.reached++;
    socks.add(s);
    s.on('error', () => {});
  });
  const c: Counter = { port: 0, reached: 0, close: () => new Promise((r) => { for (const s of socks) s.destroy(); server.close(() => r()); }) };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  c.port = (server.address() as net.AddressInfo).port;
  return c;
}
async function udpCounter(): Promise<Counter> {
  const socket = dgram.createSocket('udp4');
  const c: Counter = { port: 0, reached: 0, close: () => new Promise((r) => socket.close(() => r())) };
  socket.on('message', () => c.reached++);
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  c.port = socket.address().port;
  return c;
}

let tcpTarget: Counter, udpTarget: Counter;
const scope = scopeFor(allowAll);

beforeAll(async () => {
  [tcpTarget, udpTarget] = await Promise.all([tcpCounter(), udpCounter()]);
  instrument();
});
afterEach(() => void opened.splice(0));
afterAll(async () => {
  for (const r of restore.reverse()) r();
  await Promise.all([tcpTarget.close(), udpTarget.close()]);
});

const mint = (use: NetworkUse, protocol: PolicyProtocol, port: number): Promise<CheckedTarget> => checked(scope, { use, protocol, address: '127.0.0.1', port });
/** A frozen copy of a real target: every field equal, but no guard minted it. */
const lookalike = (t: CheckedTarget): CheckedTarget => Object.freeze({ ...t }) as CheckedTarget;

function attemptFor(target: CheckedTarget, security = SecurityParameters.disabled()): ConnectAttempt {
  return connectAttempt(scope, target, { security });
}
function listenFor(target: CheckedTarget): ListenAttempt {
  const security = new SecurityParameters({ certificate: cert.cert, key: cert.key });
  return { signal: new AbortController().signal, target, local: LocalEndpoint.from({ ipAddress: '127.0.0.1', port: 0 }), security, properties: new TransportProperties(), options: {}, guard: scope.guard };
}

async function refused(p: () => Promise<unknown>): Promise<unknown> {
  let err: unknown;
  try {
    const got = await p();
    // A channel or listener here is the failure; close it so the run can go on to report it.
    (got as { abort?: () => void; close?: () => Promise<void> }).abort?.();
    await (got as { close?: () => Promise<void> }).close?.();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TypeError);
  return err;
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('drivers called directly dial only minted targets, for a use and transport they serve', () => {
  const TCP: [string, Driver, PolicyProtocol][] = [['tcp', tcpDriver, 'tcp'], ['tls', tlsDriver, 'tls'], ['http', httpDriver, 'http'], ['ws', wsDriver, 'ws'], ['webtransport-h2', webtransportH2Driver, 'webtransport']];

  it.each(TCP)('%s: a lookalike, a target for another use and a UDP target open no socket', async (_name, driver, protocol) => {
    const secure = protocol === 'tls' || protocol === 'webtransport';
    const attemptFor = (t: CheckedTarget): ConnectAttempt => connectAttempt(scope, t, { security: secure ? new SecurityParameters() : SecurityParameters.disabled() });
    const real = await mint('connect', protocol, tcpTarget.port);
    expect(await refused(() => driver.connect(attemptFor(lookalike(real))))).toMatchObject({ message: expect.stringMatching(/minted by a scope's guard/) });
    // An object inheriting from a real target, and a copy that says it is for connect: neither was minted.
    await refused(() => driver.connect(attemptFor(Object.freeze(Object.create(real) as CheckedTarget))));
    for (const use of ['bind', 'accept'] as const) {
      const other = await mint(use, protocol, tcpTarget.port);
      await refused(() => driver.connect(attemptFor(Object.freeze({ ...other, use: 'connect' }) as CheckedTarget)));
      expect(await refused(() => driver.connect(attemptFor(other)))).toMatchObject({ message: expect.stringMatching(new RegExp(`checked for ${use} cannot open a tcp socket`)) });
    }
    const udp = await mint('connect', 'udp', tcpTarget.port);
    expect(await refused(() => driver.connect(attemptFor(udp)))).toMatchObject({ message: expect.stringMatching(/checked for udp cannot open a tcp socket/) });
    await settle();
    expect(opened).toEqual([]);
    expect(tcpTarget.reached).toBe(0);
  });

  it.each([['udp', udpDriver, 'udp'], ['quic', quicDriver, 'quic']] as [string, Driver, PolicyProtocol][])(
    '%s: a lookalike, a target for another use and a TCP target open no socket', async (_name, driver, protocol) => {
      const real = await mint('connect', protocol, udpTarget.port);
      await refused(() => driver.connect(attemptFor(lookalike(real), new SecurityParameters({ alpn: ['x'] }))));
      for (const use of ['bind', 'accept', 'redirect'] as const) {
        const other = await mint(use, protocol, udpTarget.port);
        await refused(() => driver.connect(attemptFor(other)));
      }
      const tcp = await mint('connect', 'tcp', udpTarget.port);
      await refused(() => driver.connect(attemptFor(tcp)));
      await settle();
      expect(opened).toEqual([]);
      expect(udpTarget.reached).toBe(0);
    },
  );

  it('listeners bind only minted bind targets of their transport', async () => {
    const port = tcpTarget.port; // taken: a bind that got through would fail differently (EADDRINUSE), and is recorded
    for (const [driver, protocol] of [[tcpDriver, 'tcp'], [tlsDriver, 'tls'], [wsDriver, 'ws'], [webtransportH2Driver, 'webtransport'], [udpDriver, 'udp'], [quicDriver, 'quic']] as const) {
      const bind = await mint('bind', protocol, port);
      await refused(() => driver.listen!(listenFor(lookalike(bind))));
      const connect = await mint('connect', protocol, port);
      await refused(() => driver.listen!(listenFor(connect)));
      const otherTransport = await mint('bind', protocol === 'udp' || protocol === 'quic' ? 'tcp' : 'udp', port);
      await refused(() => driver.listen!(listenFor(otherTransport)));
    }
    expect(opened).toEqual([]);
  });

  it('a peer socket sends to and connects to minted connect targets only', async () => {
    const socket = await udpDriver.openPeerSocket!(listenFor(await mint('bind', 'udp', 0)));
    try {
      opened.splice(0);
      const real = await mint('connect', 'udp', udpTarget.port);
      for (const t of [lookalike(real), await mint('bind', 'udp', udpTarget.port), await mint('connect', 'tcp', udpTarget.port)]) {
        expect(() => socket.sendTo(new Uint8Array([1]), t, () => {})).toThrow(TypeError);
        await refused(() => socket.connect(t, () => false));
      }
      await settle();
      expect(opened).toEqual([]);
      expect(udpTarget.reached).toBe(0);
      // The real one goes (the check can pass).
      await new Promise<void>((resolve, reject) => socket.sendTo(new Uint8Array([1]), real, (err) => (err ? reject(err) : resolve())));
      await settle();
      expect(udpTarget.reached).toBe(1);
      udpTarget.reached = 0;
    } finally {
      await socket.close();
    }
  });
});

describe('the exported dial helpers refuse what no guard minted', () => {
  it('connectTcp, bindServer (taps-node/tcp), connectUdp and listenUdp (taps-node/udp)', async () => {
    const t = await mint('connect', 'tcp', tcpTarget.port);
    await refused(() => connectTcp(lookalike(t), undefined, new AbortController().signal, 'tcp'));
    await refused(() => connectTcp(Object.freeze({ ...t, use: 'redirect' }) as CheckedTarget, undefined, new AbortController().signal, 'tcp'));
    await refused(() => bindServer(net.createServer(), listenFor(lookalike(t)), 'connection', () => { throw new Error('unreachable'); }, 'tcp'));
    const u = await mint('connect', 'udp', udpTarget.port);
    await refused(() => connectUdp(attemptFor(lookalike(u))));
    await refused(() => listenUdp(listenFor(lookalike(u))));
    await settle();
    expect(opened).toEqual([]);
    expect([tcpTarget.reached, udpTarget.reached]).toEqual([0, 0]);
    // The same helpers with the real targets do open (the checks can pass).
    const socket = await connectTcp(t, undefined, new AbortController().signal, 'tcp');
    socket.destroy();
    expect(opened).toEqual(['tcp connect']);
    await settle();
    expect(tcpTarget.reached).toBe(1);
    tcpTarget.reached = 0;
  });

  it('the TLS client handshake refuses a lookalike target and destroys the socket it was given', async () => {
    const t = await mint('connect', 'tls', tcpTarget.port);
    const raw = await connectTcp(t, undefined, new AbortController().signal, 'tls');
    opened.splice(0);
    const security = new SecurityParameters();
    const plan = tlsClientOptions(security, t);
    await refused(() => clientHandshake(raw, plan, lookalike(t), security, new AbortController().signal, 'tls handshake'));
    expect(raw.destroyed).toBe(true);
    expect(opened).toEqual([]);
    tcpTarget.reached = 0;
  });
});
