// The checker's public API (re-exports only): the history event types, the entry points,
// the report and its human formatting. Tests may import the internals directly.
export type {
  AckValue,
  CompletionType,
  ConsumeResult,
  ConsumeValue,
  DeadLetterMessage,
  DrainInvoke,
  EventPosition,
  HistoryEvent,
  OperationF,
  OperationType,
  PollInvoke,
  ReadFailOrInfo,
  ReadMessage,
  ReadOk,
  ReceivedMessage,
  TxEndValue,
  TxMessage,
  TxSendValue,
  SendFailOrInfo,
  SendInvoke,
  SendOk,
} from './history.js';
export { parseHistoryEvent, readHistoryFile } from './history.js';
export type { OpRef } from './pairing.js';
export type { AnomalyExample } from './findings.js';
export { examplesPerAnomalyMax } from './findings.js';
export { deliveryClockToleranceMs, lateDeliveryBoundMs } from './consumption.js';
export { anomalyKinds, consumptionAnomalyKinds, queueAnomalyKinds, transactionAnomalyKinds, formatReport, type AnomalyKind, type CheckReport, type Verdict } from './report.js';
export type { HistoryStats } from './indexes.js';
export { HistoryChecker, checkHistory, checkHistoryFile } from './checker.js';
