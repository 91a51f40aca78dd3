/**
 * The option tables: every option's default, the checks of each options object (unknown names
 * refused with the nearest known one suggested), and the limits resolved with their defaults. The
 * option types themselves are in `options.ts`.
 *
 * @module
 */
import type { IoCoreLimits, Logger, ResolvedLimits } from "./options.ts";
import { DEFAULT_RECONNECT } from "./clients/reconnect.ts";
import type { ClusterBus } from "./clients/cluster_bus.ts";
import type { Transport } from "../transports/types.ts";
import {
  abortSignal,
  arrayOf,
  boolean,
  bytesOrText,
  byTransport,
  callable,
  type Check,
  either,
  integer,
  milliseconds,
  numeric,
  oneOfValues,
  optionsOf,
  required,
  text,
  typeError,
} from "./options_check.ts";

const MiB = 1024 * 1024;

const DEFAULT_LIMITS: ResolvedLimits = {
  inputBytes: 512 * MiB,
  outputBytes: 512 * MiB,
  maxMessageBytes: 64 * MiB,
  maxStreamedMessageBytes: Number.MAX_SAFE_INTEGER,
  maxKeywordBytes: 1024,
  handshakeTimeoutMs: 10_000,
  closeTimeoutMs: 10_000,
  halfOpenTimeoutMs: 5_000,
  maxConnections: 65_536,
  maxParkedConnections: 1024,
  idleTimeoutMs: 0,
  udpIdleTimeoutMs: 60_000,
  maxUdpClients: 65_536,
};

/** The logger used when `IoCoreOptions.logger` is not given: warnings and errors to the console. */
export const defaultLogger: Logger = {
  warn: (message, ...details) => console.warn(`asockio: ${message}`, ...details),
  error: (message, ...details) => console.error(`asockio: ${message}`, ...details),
};

// The tables of known options: one per options object, each name with the check of its value.
// To add an option, or a value (`acceptUnexpectedKeywords: "adopt"`), add it here.

const PORT = integer(0, 65_535);
const REMOTE_PORT = required(integer(1, 65_535));
const PEM = bytesOrText;
const CA = either(PEM, arrayOf(PEM, "PEM text (a string or a Uint8Array) or an array of them"));

/** What listeners and outgoing clients share, per transport: the address, and TLS's material. */
const TCP_ADDRESS = { hostname: text };
const TLS_MATERIAL = { ca: CA, cert: PEM, key: PEM, tlsHandshakeTimeoutMs: milliseconds(1) };

/** Checks `IoCoreOptions.listeners[i]` (see `IoCoreListenerOptions`). */
const LISTENER = (() => {
  const shared = {
    name: text,
    maxConnections: integer(1),
    proxyProtocol: optionsOf("proxyProtocol option", { trusted: required(arrayOf(text)) }),
    websocket: optionsOf("websocket option", {
      path: required(text),
      allowedOrigins: arrayOf(text),
      pingIntervalMs: milliseconds(0),
    }),
  };
  const { proxyProtocol: _, websocket: _ws, ...sharedNoProxy } = shared;
  return byTransport("listener", {
    tcp: { ...TCP_ADDRESS, port: PORT, reusePort: boolean, ...shared },
    tls: {
      ...TCP_ADDRESS,
      port: PORT,
      reusePort: boolean,
      ...TLS_MATERIAL,
      cert: required(PEM),
      key: required(PEM),
      requestClientCert: boolean,
      ...shared,
    },
    unix: { path: required(text), mode: integer(0, 0o777), ...sharedNoProxy },
    udp: { ...TCP_ADDRESS, port: PORT, ...sharedNoProxy },
  });
})();

/** Checks `AddClientOptions.connect`: the listener's address checks, with the port required. */
const CONNECT = byTransport("connect", {
  tcp: { ...TCP_ADDRESS, port: REMOTE_PORT },
  tls: { ...TCP_ADDRESS, port: REMOTE_PORT, ...TLS_MATERIAL, serverName: text },
  unix: { path: required(text) },
  udp: { ...TCP_ADDRESS, port: REMOTE_PORT },
});

/** Every limit is a non-negative integer; the names are those of `DEFAULT_LIMITS`. */
const LIMITS = optionsOf(
  "limit",
  Object.fromEntries(Object.keys(DEFAULT_LIMITS).map((name) => [name, integer(0)])),
);

/** The reconnect names of `DEFAULT_RECONNECT`; `resolveReconnect` checks their ranges. */
const RECONNECT = either(
  oneOfValues(false),
  optionsOf(
    "reconnect option",
    Object.fromEntries(Object.keys(DEFAULT_RECONNECT).map((name) => [name, numeric])),
  ),
);

const IO_CORE_OPTIONS = optionsOf("IoCore option", {
  listeners: arrayOf(LISTENER),
  transport: (value, at, action) => {
    if (typeof value === "object" && value !== null && typeof (value as Transport).connect === "function") {
      return;
    }
    if (typeof value !== "string") {
      throw typeError(action, at, `a Transport or one of "deno", "bun", "node"`, value);
    }
    oneOfValues("deno", "bun", "node")(value, at, action);
  },
  rawConnection: callable,
  unknownClients: oneOfValues("allow", "refuse"),
  unknownClientProcessor: callable,
  acceptUnexpectedKeywords: oneOfValues(true, false, "adopt"),
  cluster: (value, at, action) => {
    const bus = value as ClusterBus | null;
    if (
      typeof bus !== "object" || bus === null || typeof bus.attach !== "function" ||
      typeof bus.send !== "function" || typeof bus.node !== "string"
    ) throw typeError(action, at, "a ClusterBus (such as natsCluster(nc, options))", value);
  },
  duplicateKeyword: oneOfValues("refuse", "replace"),
  limits: LIMITS,
  allow: arrayOf(),
  unknownClientsAllow: arrayOf(),
  logger: (value, at, action) => {
    if (value !== null && (typeof value !== "object" || Array.isArray(value))) {
      throw typeError(action, at, "a logger object or null", value);
    }
  },
  noDelay: boolean,
  signal: abortSignal,
  streamThresholdBytes: integer(0),
});

const ADD_CLIENT_OPTIONS = optionsOf("addClient option", {
  keyword: required(bytesOrText),
  connect: CONNECT,
  raw: boolean,
  processor: callable,
  allow: arrayOf(),
  secret: bytesOrText,
  reconnect: RECONNECT,
  streamThresholdBytes: integer(0),
});

/** Checks `IoCore.messages` options. */
export const MESSAGES_OPTIONS: Check = optionsOf("messages option", {
  signal: abortSignal,
  highWaterMarkBytes: integer(0, Number.MAX_SAFE_INTEGER, true), // Infinity: never pause
});

/** Checks `IoCore.shutdown` options. */
export const SHUTDOWN_OPTIONS: Check = optionsOf("shutdown option", { timeoutMs: milliseconds(0) });

/** Checks `IoCore.ioIteration` options. */
export const IO_ITERATION_OPTIONS: Check = optionsOf("ioIteration option", { signal: abortSignal });

/**
 * Checks every `IoCoreOptions` name and value, listeners and limits included; throws a
 * `TypeError` or `RangeError` naming the option, with the nearest known name for an unknown one.
 */
export function checkIoCoreOptions(options: unknown): void {
  IO_CORE_OPTIONS(options, "options", "create IoCore");
}

/** Checks `AddClientOptions`, `connect` as a listener is checked; throws `TypeError` or `RangeError`. */
export function checkAddClientOptions(options: unknown): void {
  ADD_CLIENT_OPTIONS(options, "options", "add client");
}

/** Checks `IoCoreOptions.limits` and fills in the defaults; throws `TypeError` or `RangeError`. */
export function resolveLimits(
  limits: IoCoreLimits | undefined,
  runtime?: string,
  logger?: Logger,
): ResolvedLimits {
  if (limits !== undefined) LIMITS(limits, "options.limits", "create IoCore");
  const resolved = { ...DEFAULT_LIMITS };
  for (const [name, value] of Object.entries(limits ?? {})) {
    if (value !== undefined) (resolved as Record<string, number>)[name] = value;
  }
  // Bun allocates no buffer over 2^32 bytes: a larger whole frame would fail with "Out of memory".
  if (runtime === "bun" && resolved.maxMessageBytes > LARGEST_WHOLE_MESSAGE_ON_BUN) {
    logger?.warn?.(
      `limits.maxMessageBytes ${resolved.maxMessageBytes} lowered to ${LARGEST_WHOLE_MESSAGE_ON_BUN}: Bun's largest ` +
        "buffer is 4 GiB, so larger frames are refused with MessageTooLargeError; stream them (streamThresholdBytes)",
    );
    resolved.maxMessageBytes = LARGEST_WHOLE_MESSAGE_ON_BUN;
  }
  return resolved;
}

/** On Bun, whose largest buffer is 2^32 bytes, the largest whole message (its frame must fit in one). */
export const LARGEST_WHOLE_MESSAGE_ON_BUN: number = 2 ** 32 - 8;

/** Checks a string option against its allowed values; throws a `TypeError` naming the option. */
export function oneOf<T extends string>(
  name: string,
  value: T | undefined,
  allowed: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value)) {
    throw new TypeError(`Cannot create IoCore: ${name} must be one of ${allowed.join(", ")}, got ${value}`);
  }
  return value;
}
