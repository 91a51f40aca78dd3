/**
 * {@linkcode ClientRegistry}: every client by id and by keyword, and the connections held for
 * keywords nobody has registered yet. {@linkcode ClientRecord}: one client and its inbox.
 *
 * @module
 */
import type { HmacKey } from "./auth.ts";
import type { ConnectOptions, UdpConnectOptions } from "../transports/types.ts";
import type { InlineProcessorClass } from "./processor.ts";
import type { ResolvedReconnect } from "./reconnect.ts";
import type { RuleCheck } from "./rules.ts";
import type { Session } from "./session.ts";
import type { Addr } from "../transports/types.ts";
import type { ClientId, ListenerInfo } from "./types.ts";

/**
 * What one unread message costs besides its bytes (its view object and its slot in the inbox),
 * counted against `limits.inputBytes` so that floods of small frames stay within the cap.
 */
export const UNREAD_MESSAGE_OVERHEAD_BYTES = 64;

/** A `messages()` iteration reading a client's inbox. */
export interface InboxReader {
  /** Above this many unread bytes, reading from the client's connection pauses. */
  readonly highWaterMarkBytes: number;
  /** Called when a message arrives, or the iteration should look again (removed, closed, aborted). */
  wake(): void;
}

/** The bytes a keyword is looked up by: one char per byte, so any byte sequence is a key. */
export function keywordKey(keyword: Uint8Array): string {
  let key = "";
  for (let i = 0; i < keyword.length; i++) key += String.fromCharCode(keyword[i]!);
  return key;
}

/**
 * A registered client: expected (named), unknown (raw), or a held unexpected keyword; with the
 * messages received for it and not read yet.
 *
 * @example
 * ```ts
 * import { ClientRecord } from "./client_registry.ts";
 * const record = new ClientRecord(1, "expected", new TextEncoder().encode("worker"));
 * record.push(new Uint8Array(3));
 * console.log(record.unread, record.inboxBytes); // 1 3
 * ```
 */
export class ClientRecord {
  id: ClientId;
  readonly kind: "expected" | "unknown";
  readonly keyword: Uint8Array;
  readonly key: string;
  connect: ConnectOptions | UdpConnectOptions | undefined = undefined;
  rawOnConnect = false;
  processorClass: InlineProcessorClass | undefined = undefined;
  session: Session | undefined = undefined;
  connecting = false;
  listener: ListenerInfo | undefined = undefined;
  remoteAddr: Addr | undefined = undefined;
  /** The balancer's address, when the connection came through a trusted PROXY protocol source. */
  proxyAddr: Addr | undefined = undefined;
  lastError: Error | undefined = undefined;
  inbox: Uint8Array[] = [];
  inboxHead = 0;
  /** Payload bytes of the unread messages. */
  inboxBytes = 0;
  removed = false;
  rules: RuleCheck | undefined = undefined;
  secretKey: Promise<HmacKey> | undefined = undefined;
  /** The `messages()` iteration reading this inbox, if any. */
  reader: InboxReader | undefined = undefined;
  /** Outgoing clients: the reconnect policy, or `undefined` when reconnecting is off. */
  reconnect: ResolvedReconnect | undefined = undefined;
  /** Consecutive failed connection attempts. */
  failures = 0;
  /** True when no attempt is to be made until `reconnectClient`: closed by this side, refused, or given up. */
  reconnectHeld = false;
  /** The pending retry, and when it fires. */
  retryTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  retryAt = 0;
  /** Messages accepted while not connected, sent right after the next handshake. */
  outbox: Uint8Array[] = [];
  /** Their bytes, as counted against `outputBytes` (with a frame header each). */
  outboxBytes = 0;

  /** A record with no connection and an empty inbox. */
  constructor(id: ClientId, kind: "expected" | "unknown", keyword: Uint8Array) {
    this.id = id;
    this.kind = kind;
    this.keyword = keyword;
    this.key = keywordKey(keyword);
  }

  /** Messages received and not read. */
  get unread(): number {
    return this.inbox.length - this.inboxHead;
  }

  /** What the unread messages count against `limits.inputBytes`. */
  get inboxCost(): number {
    return this.inboxBytes + this.unread * UNREAD_MESSAGE_OVERHEAD_BYTES;
  }

  /** Adds one message; returns what it costs against the input cap. */
  push(message: Uint8Array): number {
    this.inbox.push(message);
    this.inboxBytes += message.length;
    return message.length + UNREAD_MESSAGE_OVERHEAD_BYTES;
  }

  /** Removes the oldest unread message, or returns `undefined`. */
  takeOne(): Uint8Array | undefined {
    if (this.inboxHead >= this.inbox.length) return undefined;
    const message = this.inbox[this.inboxHead]!;
    this.inbox[this.inboxHead++] = undefined as unknown as Uint8Array;
    if (this.inboxHead === this.inbox.length) {
      this.inbox = [];
      this.inboxHead = 0;
    } else if (this.inboxHead > 1024 && this.inboxHead * 2 > this.inbox.length) {
      this.inbox = this.inbox.slice(this.inboxHead);
      this.inboxHead = 0;
    }
    this.inboxBytes -= message.length;
    return message;
  }

  /** Removes every unread message, oldest first. */
  takeAll(): Uint8Array[] {
    const messages = this.inboxHead === 0 ? this.inbox : this.inbox.slice(this.inboxHead);
    this.inbox = [];
    this.inboxHead = 0;
    this.inboxBytes = 0;
    return messages;
  }
}

/**
 * Clients by id and by keyword, and the connections that hold an unexpected keyword.
 *
 * @example
 * ```ts
 * import { ClientRecord, ClientRegistry } from "./client_registry.ts";
 * const registry = new ClientRegistry();
 * const record = new ClientRecord(registry.nextId(), "expected", new TextEncoder().encode("worker"));
 * registry.add(record);
 * console.log(registry.byKeyword(record.key) === record); // true
 * ```
 */
export class ClientRegistry {
  #nextId = 1;
  readonly #byId = new Map<ClientId, ClientRecord>();
  readonly #byKeyword = new Map<string, ClientRecord>();
  /** Connections that got `OK` for a keyword nobody registered, by keyword key. */
  readonly held = new Map<string, Session>();

  /** A fresh id, never reused. */
  nextId(): ClientId {
    return this.#nextId++;
  }

  /** The number of registered clients. */
  get size(): number {
    return this.#byId.size;
  }

  /** The client with this id. */
  get(id: ClientId): ClientRecord | undefined {
    return this.#byId.get(id);
  }

  /** The named client registered with this keyword key. */
  byKeyword(key: string): ClientRecord | undefined {
    return this.#byKeyword.get(key);
  }

  /** Registers a client (named clients by keyword too). */
  add(record: ClientRecord): void {
    this.#byId.set(record.id, record);
    if (record.kind === "expected") this.#byKeyword.set(record.key, record);
  }

  /** Forgets a client; returns false when it was not registered (any more). */
  delete(record: ClientRecord): boolean {
    if (this.#byId.get(record.id) !== record) return false;
    this.#byId.delete(record.id);
    if (this.#byKeyword.get(record.key) === record) this.#byKeyword.delete(record.key);
    return true;
  }
}
