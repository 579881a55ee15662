/**
 * What the Happy Eyeballs clients report for one run: the winner (stack,
 * family, address), every attempt started in start order, and the times to
 * established and to the HTTP answer, in milliseconds from the call.
 */
export interface Attempt {
  readonly stack: string;
  readonly family: 4 | 6;
  readonly startedAt?: number;
  readonly endedAt?: number;
  readonly fate?: string;
}

export interface Run {
  readonly ok: boolean;
  readonly connectMs?: number;
  readonly responseMs?: number;
  /** Time to the failure, when the run failed. */
  readonly failMs?: number;
  readonly winner?: Attempt & { readonly address: string };
  readonly attempts: readonly Attempt[];
  /** The stack the server named in its answer. */
  readonly served?: string;
  readonly code?: string;
  readonly error?: string;
}

export const request = (name: string): string => `GET / HTTP/1.1\r\nhost: ${name}\r\n\r\n`;
/** The answer is complete when its body (`served by STACK`) is. */
export const answered = /served by ([a-z0-9/]+)$/;
