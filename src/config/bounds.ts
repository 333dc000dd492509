// The bounds and rules of the config keys a client command reads, in a module that imports
// nothing: the full schema (config.ts, zod, for a node's start) and the client commands' quick
// check (client-config.ts, which must not load zod) both read them, so neither restates a number.

/** Node ids: the rule's text is the one-line message a bad id gets. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
export const NODE_ID_RULE = 'letters, digits, "_" or "-", 1 to 32 characters';
export const MIN_PORT = 1;
export const MAX_PORT = 65535;
/** A DNS name's longest form. */
export const MAX_HOST_LENGTH = 253;
/** A Raft group larger than 7 spends more on replication than it gains in fault tolerance. */
export const MAX_NODES = 7;
export const MAX_CLUSTER_ID_LENGTH = 64;
/** File paths in the config (dataDir, security files). */
export const MAX_PATH_LENGTH = 4096;
