/**
 * Transport selection: the runtime's native transport, or one picked by name.
 *
 * @example
 * ```ts
 * import { detectRuntime, nativeTransport } from "@asockio/core/transports";
 * console.log(detectRuntime(), nativeTransport().name);
 * ```
 *
 * @module
 */
import { bunTransport } from "./bun.ts";
import { denoTransport } from "./deno.ts";
import { nodeTransport } from "./node.ts";
import type { Transport, TransportName } from "./types.ts";

export type * from "./types.ts";
export { bunTransport, denoTransport, nodeTransport };

/** The JavaScript runtimes asockio knows. */
export type RuntimeName = "deno" | "bun" | "node";

/**
 * Tells which runtime runs this code. `process.release.name` says `node` on all three, so the
 * runtime globals are checked instead, Deno first.
 *
 * @example
 * ```ts
 * import { detectRuntime } from "@asockio/core/transports";
 * if (detectRuntime() === "bun") console.log("running on Bun");
 * ```
 */
export function detectRuntime(): RuntimeName {
  const g = globalThis as { Deno?: unknown; Bun?: unknown };
  if (typeof g.Deno === "object" && g.Deno !== null) return "deno";
  if (typeof g.Bun === "object" && g.Bun !== null) return "bun";
  return "node";
}

/**
 * The transport built on this runtime's own socket API.
 *
 * @example
 * ```ts
 * import { nativeTransport } from "@asockio/core/transports";
 * const transport = nativeTransport(); // denoTransport on Deno, bunTransport on Bun, nodeTransport on Node
 * ```
 */
export function nativeTransport(): Transport {
  return transportByName(detectRuntime());
}

/**
 * A transport by name. `"node"` (on `node:net`) works on all three runtimes, which is useful to
 * compare; `"deno"` and `"bun"` need their runtime.
 *
 * @example
 * ```ts
 * import { transportByName } from "@asockio/core/transports";
 * const viaNodeNet = transportByName("node");
 * ```
 */
export function transportByName(name: TransportName): Transport {
  switch (name) {
    case "deno":
      if (detectRuntime() !== "deno") throw new TypeError("Cannot use the deno transport outside Deno");
      return denoTransport;
    case "bun":
      if (detectRuntime() !== "bun") throw new TypeError("Cannot use the bun transport outside Bun");
      return bunTransport;
    case "node":
      return nodeTransport;
    default:
      throw new TypeError(`Cannot find transport ${JSON.stringify(name)}: use "deno", "bun" or "node"`);
  }
}
