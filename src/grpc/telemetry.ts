// The Telemetry streams of connected clients, keyed by x-mq-client-id. A client's Settings get
// the reply at once and again RESEND_SETTINGS_AFTER_MS later, unasked: the 1.0.8 client drops a
// reply that arrives before its startup() begins to wait and then waits for its 5-minute
// resync, so only a repeat ends its startup in time. A producer that declared topics also gets
// the cluster's transaction check-backs for them (RocketMQ 5 has no producer groups: a check
// of a transaction sent to topic T goes to a live producer that declared T), polled with
// txChecks for producer group T and written to the stream as RecoverOrphanedTransactionCommand.
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { LedgerClient } from '../client/client.js';
import type { TxCheck } from '../protocol/index.js';
import { type ClientSettings, settingsReply, type SettingsLimits } from './settings.js';
import { rmqMessageOf } from './messages.js';

const RESEND_SETTINGS_AFTER_MS = Object.freeze([1_000, 4_000, 10_000]);
/** One txChecks long poll; the client call gets a margin beyond it. */
const TX_CHECK_WAIT_MS = 5_000;
const TX_CHECK_MARGIN_MS = 3_000;
const TX_CHECK_RETRY_MS = 1_000;

type Stream = ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>;

interface Session {
  readonly clientId: string;
  /** Carries the session's calls: the endpoint's client, or the signing user's (auth.ts). */
  readonly client: LedgerClient;
  readonly stream: Stream;
  readonly timers: NodeJS.Timeout[];
  /** Topics whose check-backs this session polls. */
  readonly checking: Set<string>;
  closed: boolean;
}

export class TelemetrySessions {
  private readonly sessions = new Set<Session>();

  constructor(
    private readonly limits: SettingsLimits,
    private readonly storeHost: string,
    private readonly logger: Logger,
  ) {}

  /** Serves one Telemetry call until the client ends it. */
  serve(stream: Stream, clientId: string, client: LedgerClient): void {
    const session: Session = { clientId, client, stream, timers: [], checking: new Set(), closed: false };
    this.sessions.add(session);
    const end = () => this.end(session);
    stream.on('data', (command: Record<string, unknown>) => this.onCommand(session, command));
    stream.on('end', end);
    stream.on('error', end);
    stream.on('cancelled', end);
  }

  /** Ends every session of clientId (NotifyClientTermination). */
  terminate(clientId: string): void {
    for (const session of this.sessions) if (session.clientId === clientId) this.end(session);
  }

  close(): void {
    for (const session of this.sessions) this.end(session);
  }

  private onCommand(session: Session, command: Record<string, unknown>): void {
    if (command['command'] !== 'settings' || session.closed) return; // results of commands it was sent need nothing back
    const settings = command['settings'] as ClientSettings;
    const reply = { status: { code: 20000, message: 'OK' }, settings: settingsReply(settings, this.limits) };
    this.write(session, reply);
    for (const afterMs of RESEND_SETTINGS_AFTER_MS) session.timers.push(setTimeout(() => this.write(session, reply), afterMs).unref());
    if (settings.clientType !== 'PRODUCER') return;
    for (const { name } of settings.publishing?.topics ?? []) {
      if (name === '' || session.checking.has(name)) continue;
      session.checking.add(name);
      void this.pollChecks(session, name);
    }
  }

  private write(session: Session, command: Record<string, unknown>): void {
    if (session.closed) return;
    try {
      session.stream.write(command);
    } catch (error) {
      this.logger.debug({ err: error, clientId: session.clientId }, 'telemetry write failed');
      this.end(session);
    }
  }

  private end(session: Session): void {
    if (session.closed) return;
    session.closed = true;
    for (const timer of session.timers) clearTimeout(timer);
    this.sessions.delete(session);
    try {
      session.stream.end();
    } catch {
      // the stream is gone already
    }
  }

  private async pollChecks(session: Session, topic: string): Promise<void> {
    while (!session.closed) {
      try {
        const { checks } = await session.client.call({ op: 'txChecks', producerGroup: topic, clientId: session.clientId, waitMs: TX_CHECK_WAIT_MS }, TX_CHECK_WAIT_MS + TX_CHECK_MARGIN_MS, TX_CHECK_WAIT_MS + TX_CHECK_MARGIN_MS);
        for (const check of checks) this.sendCheck(session, check);
      } catch (error) {
        if (session.closed) return;
        this.logger.debug({ err: error, topic }, 'txChecks for a gRPC producer failed; polling again');
        await sleep(TX_CHECK_RETRY_MS);
      }
    }
  }

  private sendCheck(session: Session, check: TxCheck): void {
    for (const half of check.halfMessages) {
      const stored = { ...half, offset: 0, logIndex: 0, storeTimestampMs: check.storedAtMs };
      const message = rmqMessageOf(stored, half.topic, '', this.storeHost);
      this.write(session, { recoverOrphanedTransactionCommand: { message, transactionId: check.txId } });
    }
  }
}
