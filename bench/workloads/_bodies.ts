/**
 * The HTTP workloads' shared rule: `GET /<size>` answers `<size>` bytes of `X`, from a cache, so
 * no server spends time building bodies.
 *
 * @module
 */

/** The largest upload taken (`POST /post`, B1's upload row sends 64 MiB); the answer is its length. */
export const MAX_UPLOAD = 80 * 1024 * 1024;

/** The largest body served (the bench's biggest size is 11,680,000 bytes). */
export const MAX_BODY = 16 * 1024 * 1024;
const cache = new Map<number, Uint8Array<ArrayBuffer>>();
/** Bodies by the exact target: one lookup per request, as the bare responder's response cache. */
const byTarget = new Map<string, Uint8Array<ArrayBuffer>>();
const MAX_TARGETS = 1024;

/** The body for a request target, or `undefined` for anything but `/<size>` within bounds. */
export function bodyFor(target: string): Uint8Array<ArrayBuffer> | undefined {
  const known = byTarget.get(target);
  if (known !== undefined) return known;
  const size = Number(target.slice(1));
  if (
    !target.startsWith("/") || target.length < 2 || !Number.isSafeInteger(size) || size < 0 || size > MAX_BODY
  ) {
    return undefined;
  }
  let body = cache.get(size);
  if (!body) {
    body = new Uint8Array(size).fill(0x58);
    cache.set(size, body);
  }
  if (byTarget.size < MAX_TARGETS) byTarget.set(target, body);
  return body;
}
