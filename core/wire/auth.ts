/**
 * Optional shared-secret authentication of named clients, an extension of the original handshake.
 *
 * Framing (every message below is an ordinary frame: 8-byte little-endian length + payload):
 * 1. connecting side → `keyword` (as in the original).
 * 2. accepting side → `AUTH-HMAC-SHA256:` (17 ASCII bytes) followed by a 32-byte random nonce,
 *    only when a secret is configured for that keyword.
 * 3. connecting side → the 32-byte `HMAC-SHA256(secret, nonce ‖ keyword)`.
 * 4. accepting side → `OK`, or a short reason (`authentication failed`) and close.
 *
 * With no secret configured, steps 2–3 do not happen and the handshake is exactly the original's.
 *
 * @module
 */
import { assertBytes, toBytes } from "./bytes.ts";

/** The prefix of the challenge frame. */
export const AUTH_CHALLENGE_PREFIX: Uint8Array = toBytes("AUTH-HMAC-SHA256:");
/** Nonce length in bytes. */
export const AUTH_NONCE_BYTES = 32;
/** HMAC-SHA256 length in bytes. */
export const AUTH_PROOF_BYTES = 32;

/** Makes a challenge frame payload: the prefix and a fresh random nonce. */
export function makeChallenge(): { challenge: Uint8Array; nonce: Uint8Array } {
  const challenge = new Uint8Array(AUTH_CHALLENGE_PREFIX.length + AUTH_NONCE_BYTES);
  challenge.set(AUTH_CHALLENGE_PREFIX);
  const nonce = challenge.subarray(AUTH_CHALLENGE_PREFIX.length);
  crypto.getRandomValues(nonce);
  return { challenge, nonce };
}

/** The nonce inside a challenge payload, or `undefined` when the payload is not a challenge. */
export function challengeNonce(payload: Uint8Array): Uint8Array | undefined {
  if (payload.length !== AUTH_CHALLENGE_PREFIX.length + AUTH_NONCE_BYTES) return undefined;
  for (let i = 0; i < AUTH_CHALLENGE_PREFIX.length; i++) {
    if (payload[i] !== AUTH_CHALLENGE_PREFIX[i]) return undefined;
  }
  return payload.subarray(AUTH_CHALLENGE_PREFIX.length);
}

/** A WebCrypto HMAC key (spelled this way because Node's types declare `CryptoKey` only as a value). */
export type HmacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;

/** Imports a secret as an HMAC-SHA256 key (WebCrypto, available on Deno, Bun and Node ≥ 20). */
export function importSecret(secret: string | Uint8Array): Promise<HmacKey> {
  const raw = new Uint8Array(toBytes(secret)); // a copy on a plain ArrayBuffer, as WebCrypto wants
  return crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

/** `HMAC-SHA256(secret, nonce ‖ keyword)`. */
export async function authProof(key: HmacKey, nonce: Uint8Array, keyword: Uint8Array): Promise<Uint8Array> {
  const data = new Uint8Array(new ArrayBuffer(nonce.length + keyword.length));
  data.set(nonce);
  data.set(keyword, nonce.length);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, data));
}

/**
 * Compares two byte arrays in time that depends only on their lengths, not their contents.
 * Anything but a `Uint8Array` throws a `TypeError` (two strings of the same length would compare
 * equal: encode text with `TextEncoder` first).
 *
 * @example
 * ```ts
 * import { timingSafeEqual } from "@asockio/core";
 * console.log(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2]))); // true
 * ```
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  assertBytes(a, "a", "compare");
  assertBytes(b, "b", "compare");
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
