/**
 * What every transport does when code it calls back throws (see the contract in `types.ts`): a
 * handler's error closes its own connection and goes to `onClose`, wrapped in one typed error; a
 * throwing `onConnection` closes the connection it was given.
 *
 * @module
 */
import { CallbackError } from "../core/errors.ts";
import type { Connection } from "./types.ts";

/**
 * The error `onClose` reports when a handler callback threw `thrown`: a `CallbackError` naming the
 * callback and the connection or socket, with what was thrown as `cause`.
 */
export function handlerError(callback: string, where: string, thrown: unknown): CallbackError {
  const reason = thrown instanceof Error ? thrown.message : String(thrown);
  return new CallbackError(`Handler's ${callback} threw on ${where}: ${reason}`, { cause: thrown });
}

/**
 * Passes an accepted connection to the listener's callback. A callback that throws has a bug the
 * transport cannot report to anyone else: the connection is closed, and the error is rethrown from a
 * microtask, as a throwing `connection` listener surfaces in Node.
 */
export function handOver(conn: Connection, onConnection: (conn: Connection) => void): void {
  try {
    onConnection(conn);
  } catch (err) {
    conn.close();
    queueMicrotask(() => {
      throw err;
    });
  }
}
