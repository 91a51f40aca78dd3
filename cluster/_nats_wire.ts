/**
 * The bytes `natsCluster` puts in its NATS requests and replies: a request is an op byte and
 * messages (a 4-byte little-endian length each), a part of a large message, a locate, or (sent to
 * a node's own subject) the batches of several keywords; a reply is a code byte and a reason or the
 * holder's node name, or one such result per keyword. Keywords become subject tokens in base64url.
 *
 * @module
 */
import { ClientNotConnectedError, MessageTooLargeError, SendBufferFullError } from "../core/errors.ts";
import { FRAME_HEADER_BYTES, putHeader } from "../core/wire/frame_header.ts";

const encoder = new TextEncoder();

/** What a request carries (its first byte); `multi`: batches for several keywords, to their node. */
export const Op = { messages: 1, part: 2, locate: 3, evict: 4, multi: 5, holds: 6 } as const;
/** What a reply says (its first byte); `results`: one result per keyword of a `multi` request. */
export const Reply = { ok: 0, offline: 1, bufferFull: 2, tooLarge: 3, failed: 4, results: 5 } as const;
/** A part's flags (its second byte): the first part of a message. */
export const PART_FIRST = 1;
/** The last part of a message. */
export const PART_LAST = 2;
/** A keyword as one subject token: `k` and its bytes in base64url (so any bytes are fine). */
export function keywordToken(keyword: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < keyword.length; i++) binary += String.fromCharCode(keyword[i]!);
  return "k" + btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** True when `err`, or one of its causes, has nats.js's `code` (v2) or error class `name` (v3). */
function natsErrorIs(err: unknown, code: string, name: string): boolean {
  let e = err as { code?: unknown; name?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 4; depth++, e = e.cause as typeof e) {
    if (e.code === code || e.name === name) return true;
  }
  return false;
}

/**
 * True for nats.js's "no responders" (v2 code 503; v3 a `RequestError` whose cause is a
 * `NoRespondersError`, whose `name` is `"NoResponders"`), also as a cause.
 */
export function isNoResponders(err: unknown): boolean {
  return natsErrorIs(err, "503", "NoResponders") || natsErrorIs(err, "503", "NoRespondersError");
}

/** True for a nats.js request timeout (v2 code `TIMEOUT`, v3 `TimeoutError`), also as a cause. */
export function isTimeout(err: unknown): boolean {
  return natsErrorIs(err, "TIMEOUT", "TimeoutError");
}

/** The messages as one request of `bytes` bytes: the op, then each message as a 4-byte little-endian length and its bytes. */
export function encodeBatch(messages: readonly Uint8Array[], bytes: number): Uint8Array {
  const body = new Uint8Array(bytes);
  const view = new DataView(body.buffer);
  body[0] = Op.messages;
  let at = 1;
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i]!;
    view.setUint32(at, message.length, true);
    body.set(message, at + 4);
    at += 4 + message.length;
  }
  return body;
}

/**
 * The messages of a request made by {@linkcode encodeBatch}; throws for a malformed one. They are
 * views into one new buffer where each follows its 8-byte frame header, as a received chunk holds
 * them: a framed connection writes such a run as it is (see `framedRunEnd`), so a batch costs one
 * allocation and one copy, not one of each per message. A view keeps its batch alive until the last
 * of its messages is written: a connection's queue holds at most one batch more than it counts.
 */
export function decodeBatch(data: Uint8Array): Uint8Array[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let count = 0;
  for (let at = 1; at < data.length; count++) {
    if (at + 4 > data.length) throw new Error("malformed request: a length is cut short");
    at += 4 + view.getUint32(at, true);
    if (at > data.length) throw new Error("malformed request: a message is cut short");
  }
  const framed = new Uint8Array(data.length - 1 + count * (FRAME_HEADER_BYTES - 4));
  const messages: Uint8Array[] = new Array(count);
  let to = 0;
  for (let i = 0, at = 1; i < count; i++) {
    const length = view.getUint32(at, true);
    putHeader(framed, to, length);
    to += FRAME_HEADER_BYTES;
    framed.set(data.subarray(at + 4, at + 4 + length), to);
    messages[i] = framed.subarray(to, to + length);
    to += length;
    at += 4 + length;
  }
  return messages;
}

/** Bytes as lowercase hex. */
export function hex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** The chunks, `bytes` in all, as one array. */
export function concat(chunks: readonly Uint8Array[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** One keyword's batch in a `multi` request: the keyword, and a body made by {@linkcode encodeBatch}. */
export interface MultiEntry {
  readonly keyword: Uint8Array;
  readonly body: Uint8Array;
}

/** The bytes one entry takes in a `multi` request. */
export function multiEntryBytes(entry: MultiEntry): number {
  return 2 + entry.keyword.length + 4 + entry.body.length - 1;
}

/** Several keywords' batches as one request: per keyword a 2-byte length, the keyword, a 4-byte length and its messages. */
export function encodeMulti(entries: readonly MultiEntry[]): Uint8Array {
  let bytes = 1;
  for (const entry of entries) bytes += multiEntryBytes(entry);
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  out[0] = Op.multi;
  let at = 1;
  for (const { keyword, body } of entries) {
    view.setUint16(at, keyword.length, true);
    out.set(keyword, at + 2);
    at += 2 + keyword.length;
    view.setUint32(at, body.length - 1, true);
    out.set(body.subarray(1), at + 4);
    at += 4 + body.length - 1;
  }
  return out;
}

/** The keywords and messages of a `multi` request; throws for a malformed one. */
export function decodeMulti(data: Uint8Array): { keyword: Uint8Array; messages: Uint8Array[] }[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const entries: { keyword: Uint8Array; messages: Uint8Array[] }[] = [];
  for (let at = 1; at < data.length;) {
    if (at + 2 > data.length) throw new Error("malformed request: a keyword length is cut short");
    const keywordEnd = at + 2 + view.getUint16(at, true);
    if (keywordEnd + 4 > data.length) throw new Error("malformed request: a keyword is cut short");
    const end = keywordEnd + 4 + view.getUint32(keywordEnd, true);
    if (end > data.length) throw new Error("malformed request: a batch is cut short");
    // decodeBatch skips its first byte: the batch starts one byte before it, at the length's last byte.
    entries.push({
      keyword: data.slice(at + 2, keywordEnd),
      messages: decodeBatch(data.subarray(keywordEnd + 3, end)),
    });
    at = end;
  }
  return entries;
}

/** A `multi` request's answer: per keyword, a result code and its reason (a 2-byte length first). */
export function encodeResults(results: readonly { code: number; why: Uint8Array }[]): Uint8Array {
  let bytes = 1;
  for (const { why } of results) bytes += 3 + why.length;
  const out = new Uint8Array(bytes);
  const view = new DataView(out.buffer);
  out[0] = Reply.results;
  let at = 1;
  for (const { code, why } of results) {
    out[at] = code;
    view.setUint16(at + 1, why.length, true);
    out.set(why, at + 3);
    at += 3 + why.length;
  }
  return out;
}

/** The per-keyword replies of {@linkcode encodeResults}, each as a single reply (code, reason); throws when malformed. */
export function decodeResults(data: Uint8Array, count: number): Uint8Array[] {
  if (data[0] !== Reply.results) throw new Error("malformed answer: not a results reply");
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const results: Uint8Array[] = [];
  for (let at = 1; at < data.length;) {
    if (at + 3 > data.length) throw new Error("malformed answer: a result is cut short");
    const end = at + 3 + view.getUint16(at + 1, true);
    if (end > data.length) throw new Error("malformed answer: a reason is cut short");
    const reply = new Uint8Array(end - at - 2);
    reply[0] = data[at]!;
    reply.set(data.subarray(at + 3, end), 1);
    results.push(reply);
    at = end;
  }
  if (results.length !== count) throw new Error(`malformed answer: ${results.length} results for ${count}`);
  return results;
}

/** A delivery's failure as a reply code and reason. */
export function failure(err: unknown): { code: number; why: Uint8Array } {
  const code = err instanceof ClientNotConnectedError
    ? Reply.offline
    : err instanceof SendBufferFullError
    ? Reply.bufferFull
    : err instanceof MessageTooLargeError
    ? Reply.tooLarge
    : Reply.failed;
  return { code, why: encoder.encode(err instanceof Error ? err.message : String(err)) };
}
