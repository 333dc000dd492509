// The public client API — what `import … from 'ledgermq'` (or 'ledgermq/client') gives: the
// client with leader discovery and retries, the idempotent batching producer, the transactional
// producer, the pull consumer, the push (concurrent), orderly and simple consumers, the TCP
// connector, the protocol's request/response types and limits, and the
// error catalogue. Everything else in the package is internal and may change.
export { type ClientConnection, type ClientNode, type ClientOptions, type Connector, DEFAULT_CLIENT_OPTIONS, LedgerClient } from './client.js';
export { type ConsumedMessage, type ConsumerOptions, PullConsumer, type QueueStart, queryStartOffsets, type StartPosition, topicQueues } from './consumer.js';
export {
  type ConsumeContext,
  type ConsumeStatus,
  DEFAULT_PUSH_CONSUMER_OPTIONS,
  type MessageListener,
  PushConsumer,
  type PushConsumerOptions,
  type PushMessage,
  retryTopic,
} from './push-consumer.js';
export {
  DEFAULT_ORDERLY_OPTIONS,
  type OrderlyConsumerOptions,
  type OrderlyContext,
  OrderlyConsumer,
  type OrderlyListener,
  type OrderlyMessage,
  type OrderlyStats,
  type OrderlyStatus,
} from './orderly-consumer.js';
export {
  DEFAULT_SIMPLE_CONSUMER_OPTIONS,
  type ReceiveOptions,
  SimpleConsumer,
  type SimpleConsumerOptions,
  type SimpleMessage,
} from './simple-consumer.js';
export {
  DEFAULT_PRODUCER_OPTIONS,
  hashKey,
  type OutgoingMessage,
  Producer,
  type ProducerOptions,
  type ProducerStats,
  type QueueSelector,
  type SendResult,
} from './producer.js';
export {
  DEFAULT_TRANSACTION_OPTIONS,
  type HalfSendResult,
  Transaction,
  type TransactionChecker,
  type TransactionEnd,
  TransactionProducer,
  type TransactionProducerOptions,
  type TransactionState,
} from './transaction.js';
export { tcpConnector, tlsConnector } from './tcp-connector.js';
export {
  type Ack,
  type Assignment,
  type GroupQueueLag,
  LIMITS,
  type MessageOrigin,
  type NodeStatus,
  type OpName,
  type PlacedMessage,
  type QueueOffsets,
  type QueueRange,
  type ReceivedMessage,
  type Request,
  type RequestOf,
  type ResponseOf,
  type StoredMessage,
  type TopicInfo,
  type HalfMessage,
  type TxCheck,
  type TxOutcome,
  type TxSummary,
  UNSEQUENCED,
} from '../protocol/index.js';
// Subscription filters: what a consumer's `filter` option takes, and its check (a bad expression throws LMQ_BAD_INPUT with its position).
export { compileFilter, type SubscriptionFilter } from '../filter/index.js';
export type { Credentials } from '../security/signature.js';
export { ERROR_TRAITS, type ErrorCode, isLmqError, LmqError, NOT_SENT } from '../util/errors.js';
