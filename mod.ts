/**
 * asockio: an async socket IO core for Deno, Bun and Node.
 *
 * One {@linkcode IoCore} accepts connections from several listeners at once (TCP over IPv4 and
 * IPv6, UNIX sockets), connects out through the same API, and carries framed messages (an 8-byte
 * little-endian length prefix) and raw byte streams on the same server. Named clients announce a
 * keyword; everyone else is an unknown client, admitted or refused by policy. Drive it with plain
 * code (`ioIteration`) or by subclassing {@linkcode InlineProcessor}.
 *
 * @example A named-client echo server with the plain-code API
 * ```ts
 * import { IoCore } from "@asockio/core";
 *
 * await using core = new IoCore({ listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }] });
 * const [addr] = await core.listen();
 * core.addClient({ keyword: "manager client" });
 * for (let i = 0; i < 10; i++) {
 *   const r = await core.ioIteration(100);
 *   for (const id of r.clientsHaveDataToRead) {
 *     core.sendMessagesToClient(id, core.getMessagesFromClient(id));
 *   }
 * }
 * ```
 *
 * @module
 */
import { setTransportResolver } from "./core/engine/transport_slot.ts";
import { nativeTransport, transportByName } from "./transports/mod.ts";

// The one place the runtime's transport is chosen: the core asks this slot, and names no runtime.
setTransportResolver((name) => name === undefined ? nativeTransport() : transportByName(name));

export * from "./core/errors.ts";
export { IoCore } from "./core/io_core.ts";
export type {
  AddClientOptions,
  IncomingConnectionInfo,
  IoCoreLimits,
  IoCoreListenerOptions,
  IoCoreOptions,
  IoIterationOptions,
  Logger,
  MessagesOptions,
  ProxyProtocolOptions,
  ShutdownOptions,
  WebSocketListenerOptions,
} from "./core/options.ts";
export type {
  ClientConnectionState,
  ClientId,
  ClientInfo,
  IoCoreStats,
  IoIterationResult,
  Keyword,
  ListenerInfo,
  MessageStream,
} from "./core/types.ts";
export type { MessageStreamSource } from "./core/connection/message_stream_send.ts";
export type { InlineProcessorClass, Processor, ProcessorContext } from "./core/processor.ts";
export type { FrameBatch, FrameVisitor } from "./core/wire/frame_batch.ts";
export type { ReconnectOptions } from "./core/clients/reconnect.ts";
export type {
  ClusterBus,
  ClusterHost,
  ClusterRefusal,
  ClusterStats,
  KeywordLocation,
} from "./core/clients/cluster_bus.ts";
export { type CidrRange, type IpBytes, ipInRange, isLoopbackIp, parseCidr, parseIp } from "./core/wire/ip.ts";
export {
  type AccessRule,
  ALLOW_ALL,
  compileRules,
  LOCAL_ONLY,
  type PeerInfo,
  type RuleCheck,
} from "./core/admission/rules.ts";
export { timingSafeEqual } from "./core/wire/auth.ts";
export {
  DEFAULT_MAX_MESSAGE_BYTES,
  encodeFrame,
  encodeFrames,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  type FrameDecoderOptions,
} from "./core/wire/codec.ts";
export { InlineProcessor } from "./processors/inline_processor.ts";
export { detectRuntime, nativeTransport, type RuntimeName, transportByName } from "./transports/mod.ts";
export type * from "./transports/types.ts";
