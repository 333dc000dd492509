// RocketMQ 5 status codes (apache.rocketmq.v2.Code) and the one mapping from ledgermq's error
// catalogue onto them. The official clients treat 20000 as success and throw on every other
// code (0 included), so every failure answers a non-zero, non-OK code: the mapping is total
// over ErrorCode (the switch below does not compile without a case for each), and anything
// that is not an LmqError is an internal error.
import { isLmqError, type ErrorCode } from '../util/errors.js';

export const Code = Object.freeze({
  OK: 20000,
  BAD_REQUEST: 40000,
  ILLEGAL_TOPIC: 40002,
  ILLEGAL_CONSUMER_GROUP: 40003,
  ILLEGAL_MESSAGE_TAG: 40004,
  ILLEGAL_MESSAGE_KEY: 40005,
  ILLEGAL_MESSAGE_GROUP: 40006,
  ILLEGAL_MESSAGE_PROPERTY_KEY: 40007,
  INVALID_TRANSACTION_ID: 40008,
  ILLEGAL_MESSAGE_ID: 40009,
  ILLEGAL_FILTER_EXPRESSION: 40010,
  ILLEGAL_INVISIBLE_TIME: 40011,
  ILLEGAL_DELIVERY_TIME: 40012,
  INVALID_RECEIPT_HANDLE: 40013,
  UNRECOGNIZED_CLIENT_TYPE: 40015,
  CLIENT_ID_REQUIRED: 40017,
  UNAUTHORIZED: 40100,
  FORBIDDEN: 40300,
  MESSAGE_NOT_FOUND: 40401,
  TOPIC_NOT_FOUND: 40402,
  MESSAGE_BODY_TOO_LARGE: 41301,
  TOO_MANY_REQUESTS: 42900,
  INTERNAL_ERROR: 50000,
  INTERNAL_SERVER_ERROR: 50001,
  HA_NOT_AVAILABLE: 50002,
  NOT_IMPLEMENTED: 50100,
  PROXY_TIMEOUT: 50400,
  UNSUPPORTED: 50500,
});

export interface Status {
  readonly code: number;
  readonly message: string;
}

export const OK_STATUS: Status = Object.freeze({ code: Code.OK, message: 'OK' });

/** A failure the gateway itself finds in a request (before any call to the cluster). */
export class GrpcRequestError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = 'GrpcRequestError';
  }
}

/** The RocketMQ code of an LmqError code. */
export function codeOfLmqError(code: ErrorCode): number {
  switch (code) {
    case 'LMQ_BAD_INPUT':
    case 'LMQ_TOPIC_EXISTS':
      return Code.BAD_REQUEST;
    case 'LMQ_TOPIC_NOT_FOUND':
      return Code.TOPIC_NOT_FOUND;
    // No leader within the gateway's deadline: the clients retry 50002 (receive) and any failure (send).
    case 'LMQ_NOT_LEADER':
    case 'LMQ_UNAVAILABLE':
      return Code.HA_NOT_AVAILABLE;
    // The outcome is unknown: a timeout, as RocketMQ's proxy answers one.
    case 'LMQ_TIMEOUT':
    case 'LMQ_LEADERSHIP_LOST':
      return Code.PROXY_TIMEOUT;
    case 'LMQ_OVERLOADED':
      return Code.TOO_MANY_REQUESTS;
    // Nothing was stored and a resend goes through (the client resends any failed send).
    case 'LMQ_OUT_OF_ORDER':
    case 'LMQ_ROUTE_CHANGED':
      return Code.INTERNAL_SERVER_ERROR;
    case 'LMQ_DISK_FULL':
    case 'LMQ_CORRUPT_DATA':
    case 'LMQ_BAD_CONFIG':
    case 'LMQ_TRANSFER_FAILED': // an admin operation no RPC makes
      return Code.INTERNAL_ERROR;
    case 'LMQ_UNAUTHENTICATED':
      return Code.UNAUTHORIZED;
    case 'LMQ_FORBIDDEN':
      return Code.FORBIDDEN;
    case 'LMQ_RECEIPT_EXPIRED':
      return Code.INVALID_RECEIPT_HANDLE;
    case 'LMQ_TX_ENDED':
      return Code.INVALID_TRANSACTION_ID;
  }
}

/** The status a failed RPC answers: never OK, never 0. */
export function statusOfError(error: unknown): Status {
  if (error instanceof GrpcRequestError) return { code: error.code, message: error.message };
  if (isLmqError(error)) return { code: codeOfLmqError(error.code), message: `${error.code}: ${error.message}` };
  return { code: Code.INTERNAL_ERROR, message: error instanceof Error ? error.message : String(error) };
}
