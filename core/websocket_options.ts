/**
 * {@linkcode WebSocketListenerOptions}: the `websocket` option of a listener.
 *
 * @module
 */

/**
 * The `websocket` option of a TCP or TLS listener.
 *
 * Browsers always send `Origin`, and any web page may open `ws://127.0.0.1`: with `allowedOrigins`
 * unset, a connection with an `Origin` header (including `Origin: null`, from sandboxed frames and
 * `file:` pages) is admitted only as a named client registered with a `secret`; it can be neither an
 * unknown client nor a held keyword. With `allowedOrigins` set, an upgrade from any other origin
 * (`null` included: it cannot be listed) gets 403. A request without `Origin` comes from a
 * non-browser client and is not subject to either.
 *
 * @example
 * ```ts
 * import type { WebSocketListenerOptions } from "@asockio/core";
 * const ws: WebSocketListenerOptions = { path: "/ws", allowedOrigins: ["http://127.0.0.1:8080"] };
 * ```
 */
export interface WebSocketListenerOptions {
  /** The request path (without the query) that upgrades, such as `/ws`. Other paths' upgrades get 404. */
  path: string;
  /** The exact origins (`scheme://host[:port]`) whose pages may connect. Unset: see above. */
  allowedOrigins?: readonly string[];
  /**
   * The server pings this often, and closes (1001) a peer whose pong has not come by the next ping.
   * `0` sends no pings.
   * @default {30000}
   */
  pingIntervalMs?: number;
}
