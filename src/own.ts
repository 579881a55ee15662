/**
 * Reading objects a caller supplies, safely: each field once, own data
 * properties only. A getter could answer one thing to a check and another to
 * the code that acts on it, and a field inherited from a polluted
 * `Object.prototype` is not the caller's at all, so an accessor is refused
 * (TypeError naming the field) and an inherited field reads as absent. A
 * Proxy is asked once per field, through its descriptor trap, and its answer
 * is what is used. Values are never coerced (no `toString`, `valueOf` or
 * `Symbol.toPrimitive` of the caller's runs): callers check `typeof`.
 *
 * @example
 * const { use, address } = ownFields(request, ['use', 'address'], 'request');
 * const custom = ownField(options, 'custom', 'options');
 */

const describeOf = Object.getOwnPropertyDescriptor;

/** The own data value of `key` in `obj` (undefined when absent or inherited); an accessor throws a TypeError. */
export function ownField(obj: object, key: string, what: string): unknown {
  const d = describeOf(obj, key);
  if (d === undefined) return undefined;
  if (d.get !== undefined || d.set !== undefined) throw new TypeError(`${what}.${key} must be a data property, not a getter or setter`);
  return d.value;
}

/** `obj` must be a non-null object (not a function); a TypeError naming `what` otherwise. */
export function checkObject(obj: unknown, what: string): object {
  if (typeof obj !== 'object' || obj === null) throw new TypeError(`${what} must be an object`);
  return obj;
}

/** A snapshot of `keys` from `obj` (own data properties only; see the module comment). */
export function ownFields<K extends string>(obj: unknown, keys: readonly K[], what: string): { [P in K]: unknown } {
  const o = checkObject(obj, what);
  const out = {} as { [P in K]: unknown };
  for (const k of keys) out[k] = ownField(o, k, what);
  return out;
}

/** An options bag: undefined stays `{}`-like (every field absent); anything else must be an object. */
export function optionsBag(obj: unknown, what: string): object {
  return obj === undefined ? EMPTY : checkObject(obj, what);
}

const EMPTY: object = Object.freeze(Object.create(null) as object);

/** `%TypedArray%.prototype`'s byteLength getter: a view's real length, whatever its class or own properties say. */
const realByteLength = describeOf(Object.getPrototypeOf(Uint8Array.prototype) as object, 'byteLength')!.get as (this: Uint8Array) => number;
const applyOf = Reflect.apply;
const protoOf = Object.getPrototypeOf;
const NO_ARGS: readonly [] = Object.freeze([]) as readonly [];
const UINT8 = Uint8Array.prototype;
const BUFFER = Buffer.prototype;

/**
 * `bytes` as the library may count and send it: itself when it is a plain Uint8Array or Buffer whose
 * `byteLength` and `length` are its real length, else a copy. A subclass's getters or an own property
 * could say 0 to the byte budget while the socket sends every byte (a datagram socket reads the memory).
 */
export function ownBytes(bytes: Uint8Array): Uint8Array {
  const proto: unknown = protoOf(bytes);
  const n = applyOf(realByteLength, bytes, NO_ARGS);
  if ((proto === UINT8 || proto === BUFFER) && bytes.byteLength === n && bytes.length === n) return bytes;
  return new Uint8Array(bytes); // copied from the view's memory, not through its getters
}
