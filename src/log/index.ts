// Public API of the log layer: the durable Raft log store and the hard-state store.
export { LogStore, type LogStoreOptions, type LogStoreStats, type LogWindow, type SegmentInfo } from './log-store.js';
export { HardStateStore } from './hard-state-store.js';
