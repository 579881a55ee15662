/**
 * A real TCP blackhole on loopback, for "abort during connect" tests.
 *
 * `python3` opens a listening socket with backlog 0 that never calls
 * `accept()`, and fills its accept queue with one completed connection of its
 * own. Linux then silently drops further SYNs (tcp_abort_on_overflow = 0), so a
 * connect to the port hangs like a connect to an unreachable host until the
 * caller gives up. Node cannot make such
 * a listener: it always accepts. The child exits when its stdin closes, so it
 * never outlives the test process.
 *
 * @example
 * const hole = await blackhole('127.0.0.1');
 * const ac = new AbortController();
 * const p = driver.connect({ ...attempt, target: await checked(scope, { protocol: 'tcp', address: '127.0.0.1', port: hole.port }) });
 * ac.abort(); await expect(p).rejects.toMatchObject({ code: 'ERR_TAPS_ABORTED' });
 * await hole.close();
 */
import { spawn } from 'node:child_process';

export interface Blackhole {
  readonly address: string;
  readonly port: number;
  /** Kill the child and wait until its pipes are closed. Idempotent. */
  close(): Promise<void>;
}

const SCRIPT = `
import socket, sys
host = sys.argv[1]
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.bind((host, 0))
s.listen(0)
port = s.getsockname()[1]
filler = socket.socket(fam, socket.SOCK_STREAM)
filler.connect((host, port))
sys.stdout.write(str(port) + "\\n")
sys.stdout.flush()
sys.stdin.read()
`;

/** Start a blackhole listener on `address` (127.0.0.1 or ::1). */
export function blackhole(address: '127.0.0.1' | '::1' = '127.0.0.1'): Promise<Blackhole> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', SCRIPT, address], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let settled = false;
    const exited = new Promise<void>((r) => child.once('close', () => r()));
    const close = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin.end();
        child.kill('SIGKILL');
      }
      await exited;
      // The process handle closes one loop turn after 'close'.
      await new Promise((r) => setTimeout(r, 0));
    };
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err += d));
    child.stdout.on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0 || settled) return;
      settled = true;
      const port = Number(out.slice(0, nl));
      if (!Number.isInteger(port) || port <= 0) {
        void close().then(() => reject(new Error(`blackhole helper printed ${JSON.stringify(out)}`)));
        return;
      }
      resolve({ address, port, close });
    });
    child.once('error', (e) => {
      if (settled) return;
      settled = true;
      reject(e);
    });
    child.once('exit', (code) => {
      if (settled) return;
      settled = true;
      reject(new Error(`blackhole helper exited with ${code}: ${err}`));
    });
  });
}
