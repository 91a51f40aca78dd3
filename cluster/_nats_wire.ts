/**
 * The bytes `natsCluster` puts in its NATS requests and replies: a request is an op byte and
 * messages (a 4-byte little-endian length each), a part of a large message, or a locate; a reply is
 * a code byte and a reason or the holder's node name. Keywords become subject tokens in base64url.
 *
 * @module
 */

/** What a request carries (its first byte). */
export const Op = { messages: 1, part: 2, locate: 3, evict: 4 } as const;
/** What a reply says (its first byte). */
export const Reply = { ok: 0, offline: 1, bufferFull: 2, tooLarge: 3, failed: 4 } as const;
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

/** True for nats.js's "no responders" (v2 code 503, v3 `NoRespondersError`), also as a cause. */
export function isNoResponders(err: unknown): boolean {
  return natsErrorIs(err, "503", "NoRespondersError");
}

/** True for a nats.js request timeout (v2 code `TIMEOUT`, v3 `TimeoutError`), also as a cause. */
export function isTimeout(err: unknown): boolean {
  return natsErrorIs(err, "TIMEOUT", "TimeoutError");
}

/** The calls' messages as one request: the op, then each message as a 4-byte little-endian length and its bytes. */
export function encodeBatch(
  calls: readonly { readonly messages: readonly Uint8Array[] }[],
  bytes: number,
): Uint8Array {
  const body = new Uint8Array(bytes);
  const view = new DataView(body.buffer);
  body[0] = Op.messages;
  let at = 1;
  for (const call of calls) {
    for (const message of call.messages) {
      view.setUint32(at, message.length, true);
      body.set(message, at + 4);
      at += 4 + message.length;
    }
  }
  return body;
}

/** The messages of a request made by {@linkcode encodeBatch}; throws for a malformed one. */
export function decodeBatch(data: Uint8Array): Uint8Array[] {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const messages: Uint8Array[] = [];
  for (let at = 1; at < data.length;) {
    if (at + 4 > data.length) throw new Error("malformed request: a length is cut short");
    const length = view.getUint32(at, true);
    if (at + 4 + length > data.length) throw new Error("malformed request: a message is cut short");
    messages.push(data.slice(at + 4, at + 4 + length));
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
