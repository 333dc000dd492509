// The client-port protocol, the layer below both the client (src/client) and the broker
// service (src/broker): the typed request and response of every operation, the one table of
// limits they and the commit-log codec derive from, and the character rules for names and
// texts. It owns the wire format's shapes, not its framing (src/transport) nor the commit log's
// format (src/broker/commands.ts) — the two change independently, but for one part: a produce's
// messages in their binary form (produce-messages.ts, over byte-codec.ts), which a client may
// send and the leader copies into the log as they are.
export * from './limits.js';
export * from './receipts.js';
export * from './requests.js';
export * from './responses.js';
