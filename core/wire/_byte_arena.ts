/**
 * {@linkcode reserveArena}, {@linkcode trimArena} and {@linkcode releaseArena}: short-lived buffers of a size known only as a
 * bound, carved from shared blocks. The WebSocket frame paths make one such buffer per chunk (the
 * parser's batched messages, the packed output frames); on Bun a fresh `Uint8Array` of a few dozen
 * KiB cost more than the frames written into it. A byte is never handed out twice: a block is dropped
 * (to the GC) once full, so a view kept by the application or a transport stays valid, and pins its
 * block as any view pins its buffer; only bytes nothing refers to anymore are given back
 * ({@linkcode releaseArena}).
 *
 * @example
 * ```ts
 * import { reserveArena, trimArena } from "./_byte_arena.ts";
 * const out = reserveArena(100); // room for at most 100 bytes, not zeroed
 * out[0] = 1;
 * const used = trimArena(out, 1); // the other 99 go back to the block
 * console.log(used.length); // 1
 * ```
 *
 * @module
 */

/** The size of a shared block. */
const BLOCK_BYTES = 256 * 1024;
/** Larger reservations get a buffer of their own (a block is never more than a quarter wasted). */
const MAX_RESERVATION = BLOCK_BYTES / 4;

let block = new Uint8Array(0);
let at = 0;
/** The last reservation from the block, the only one that can be trimmed. */
let last: Uint8Array | undefined;

/**
 * A buffer of `size` bytes, a view of a shared block; give back its unused end with
 * {@linkcode trimArena}. Its bytes are not always zero (a trimmed end may come back written): write
 * every byte you use.
 */
export function reserveArena(size: number): Uint8Array {
  if (size > MAX_RESERVATION) return new Uint8Array(size);
  if (at + size > block.length) {
    block = new Uint8Array(BLOCK_BYTES);
    at = 0;
  }
  const view = block.subarray(at, at + size);
  at += size;
  last = view;
  return view;
}

/**
 * `reserved`'s first `used` bytes. When `reserved` is the block's last reservation, the rest goes back
 * to the block; never use `reserved` past `used` afterwards.
 */
export function trimArena(reserved: Uint8Array, used: number): Uint8Array {
  if (reserved === last) {
    at -= reserved.length - used;
    last = undefined;
  }
  return used === reserved.length ? reserved : reserved.subarray(0, used);
}

/**
 * Gives `bytes` back when they end where the block's free space begins (nothing was reserved after
 * them): the next reservation reuses them. Only for bytes nothing refers to anymore, such as a run of
 * messages that were all read as copies.
 */
export function releaseArena(bytes: Uint8Array): void {
  if (bytes.buffer !== block.buffer || bytes.byteOffset + bytes.length !== at) return;
  at = bytes.byteOffset;
  last = undefined;
}
