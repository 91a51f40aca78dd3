/**
 * The slot through which the core gets the runtime's transport without naming one: `mod.ts` fills
 * it when it loads (as nats.js sets its transport factory), so nothing in `core/` imports
 * `transports/deno.ts`, `bun.ts` or `node.ts`.
 *
 * @module
 */
import type { Transport, TransportName } from "../../transports/types.ts";

/** Picks a transport: the runtime's native one for `undefined`, else the one named. */
export type TransportResolver = (name: TransportName | undefined) => Transport;

let resolver: TransportResolver | undefined;

/**
 * Fills the slot; the package entry point calls it once.
 */
export function setTransportResolver(resolve: TransportResolver): void {
  resolver = resolve;
}

/**
 * The transport for `IoCoreOptions.transport`: an object as it is, a name or `undefined` through
 * the slot.
 */
export function resolveTransport(transport: Transport | TransportName | undefined): Transport {
  if (typeof transport === "object" && transport !== null) return transport;
  if (!resolver) {
    throw new TypeError(
      "Cannot choose a transport: import IoCore from the package entry point (mod.ts), or pass options.transport",
    );
  }
  return resolver(transport);
}
