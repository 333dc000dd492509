// The RocketMQ 5 protocol definition, loaded once: apache.rocketmq.v2.MessagingService from the
// proto files vendored under ./proto (Apache-2.0, copied unchanged from the official client's
// package so the server never depends on a devDependency). The files stay in src/ — tsc does not
// copy them — so the path is found from this module whether it runs from src/ or dist/src/.
import { resolve, sep } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Where the vendored protos are (also loaded by the chaos workload's RocketMQ client, src/chaos/rmq-client.ts). */
export const PROTO_ROOT = resolve(import.meta.dirname, import.meta.dirname.includes(`${sep}dist${sep}`) ? '../../../src/grpc/proto' : './proto');

/**
 * How messages cross into JavaScript: camelCase fields, int64 as numbers (offsets and
 * timestamps stay far below 2^53), enums as their names, unset fields as their defaults, and the
 * name of the set member of each oneof.
 */
const LOADER_OPTIONS: protoLoader.Options = Object.freeze({ keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_ROOT] });

let service: grpc.ServiceDefinition | undefined;

/** The MessagingService definition a grpc.Server adds handlers for. */
export function messagingServiceDefinition(): grpc.ServiceDefinition {
  if (service !== undefined) return service;
  const packageDefinition = protoLoader.loadSync('apache/rocketmq/v2/service.proto', LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as { apache: { rocketmq: { v2: { MessagingService: { service: grpc.ServiceDefinition } } } } };
  service = loaded.apache.rocketmq.v2.MessagingService.service;
  return service;
}
