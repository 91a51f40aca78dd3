/**
 * {@linkcode ClientIds}: the one rule for client ids that every `IoCore` method follows. Queries
 * answer `undefined` for an unknown id; acting methods throw `UnknownClientError` for it, and
 * `CoreClosedError` after `close()`; a malformed id is a `TypeError` or `RangeError` everywhere.
 *
 * @module
 */
import { ConnectionClosedError, CoreClosedError, UnknownClientError } from "../errors.ts";
import { integer } from "../options_check.ts";
import type { ClientRecord, ClientRegistry } from "../clients/client_registry.ts";
import type { ClientId } from "../types.ts";

const CLIENT_ID = integer(1);

/** Looks clients up for `IoCore`'s methods. The id is checked only when a lookup fails, so a good id costs nothing more. */
export class ClientIds {
  readonly #registry: ClientRegistry;
  readonly #isClosed: () => boolean;

  /** Looks up in `registry`; `isClosed` tells whether the core was closed. */
  constructor(registry: ClientRegistry, isClosed: () => boolean) {
    this.#registry = registry;
    this.#isClosed = isClosed;
  }

  /** A query's client: the record, or `undefined` for an unknown id; throws only for a malformed id. */
  query(id: ClientId, action: string): ClientRecord | undefined {
    const record = this.#registry.get(id);
    if (record === undefined) CLIENT_ID(id, "id", action);
    return record;
  }

  /** An acting method's client; throws for a malformed or unknown id, and after `close()`. */
  client(id: ClientId, action: string): ClientRecord {
    const record = this.#registry.get(id);
    if (record === undefined || this.#isClosed()) throw this.refused(id, action);
    return record;
  }

  /** Why an acting method is refused: a malformed id, the core closed, or an unknown id. */
  refused(id: ClientId, action: string): Error {
    CLIENT_ID(id, "id", action);
    if (this.#isClosed()) return new CoreClosedError(`Cannot ${action}: the core is closed`);
    return new UnknownClientError(`Cannot ${action}: no client ${id}`);
  }

  /**
   * A failed send's error: for an id that names no client, the one every acting method gives. The
   * send itself looks the client up, so the check costs nothing until it fails.
   */
  sendFailed(err: unknown, id: ClientId, action: string): unknown {
    if (err instanceof ConnectionClosedError && this.#registry.get(id) === undefined) {
      return this.refused(id, action);
    }
    return err;
  }
}
