/**
 * Message framers (RFC 9622 §9.1.2): the interface and the two built-in
 * framers. Write your own by implementing {@link MessageFramer}.
 */
export type { MessageFramer, Deframer, DeframerSink } from './types.js';
export { lengthPrefixFramer, type LengthPrefixOptions } from './length-prefix.js';
export { delimiterFramer, type DelimiterOptions } from './delimiter.js';
export { framerStack } from './stack.js';
