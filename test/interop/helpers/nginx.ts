/**
 * nginx for the interop tier (Debian's nginx-light): one configuration
 * skeleton — foreground, one worker, every path inside the test's own
 * directory, TLS on loopback with HTTP/2 — around the `server` lines a test
 * needs, and the start that waits for the worker.
 */
import { writeFileSync } from 'node:fs';
import { startPeer, type Peer } from './process.js';

export interface NginxSite {
  /** The test's directory (holds cert.pem and key.pem; nginx writes its pid and temp files here). */
  readonly dir: string;
  /** The loopback TCP port nginx serves TLS (HTTP/1.1 and HTTP/2) on. */
  readonly port: number;
  /** Lines inside `server { }` after the listen and certificate lines (locations and such). */
  readonly server: string;
  /** Lines inside `http { }` before the server; default `access_log off;`. */
  readonly http?: string;
}

/** The configuration text for `site`. */
export function nginxConf(site: NginxSite): string {
  const { dir, port } = site;
  return `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
  ${site.http ?? 'access_log off;'}
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} ssl http2;
    server_name localhost;
    ssl_certificate ${dir}/cert.pem;
    ssl_certificate_key ${dir}/key.pem;
${site.server}
  }
}
`;
}

/** Write `site`'s configuration as `<dir>/nginx.conf` and start `nginx` (the program's path) on it. */
export async function startNginx(nginx: string, site: NginxSite): Promise<Peer> {
  const conf = `${site.dir}/nginx.conf`;
  writeFileSync(conf, nginxConf(site));
  // -e: nginx opens its error log before reading the configuration; -p: every relative path is ours.
  return startPeer(nginx, ['-e', 'stderr', '-p', site.dir, '-c', conf], { ready: /start worker process|using the "epoll" event method/ });
}
