// The broker layer's public API: the replicated commands and the state machine that applies them.
export {
  type BrokerCommand,
  COMMAND_FORMAT_VERSION,
  decodeCommand,
  encodeCommand,
  type OffsetPosition,
  type ProduceMessage,
  topicNameProblem,
} from './commands.js';
export {
  type ApplyResult,
  BrokerStateMachine,
  type BrokerStateMachineOptions,
  type CommittedLogReader,
  type GroupQueueLag,
  STATE_MACHINE_DEFAULTS,
  STATE_MACHINE_LIMITS,
  type StoredMessage,
} from './state-machine.js';
export type { Placement } from './store.js';
export { type BrokerSnapshot, DEFAULT_SNAPSHOT_CHUNK_BYTES, readSnapshotHeader, SNAPSHOT_FORMAT_VERSION } from './snapshot.js';
