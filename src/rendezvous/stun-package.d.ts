// The STUN package ships no types; src/rendezvous/stun.ts declares the part it uses.
declare module '@msimerson/stun';
