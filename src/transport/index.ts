// The transport layer's public API: length-prefixed msgpack framing, the Raft peer transport,
// and the client-port request/response server and connection. Layers above import from here.

export { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameDecoder, FrameError } from './framing.js';
export { PeerTransport, PEER_TRANSPORT_DEFAULTS } from './peer-transport.js';
export type { InboundStats, PeerAddress, PeerLinkStats, PeerTransportOptions } from './peer-transport.js';
export { RpcServer, RPC_SERVER_DEFAULTS } from './rpc-server.js';
export type { RpcContext, RpcHandler, RpcServerOptions } from './rpc-server.js';
export { RpcConnection, RPC_CONNECTION_DEFAULTS } from './rpc-connection.js';
export type { RpcConnectionOptions } from './rpc-connection.js';
