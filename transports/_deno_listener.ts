/**
 * The deno transport's TCP and UNIX listeners, on `Deno.listen`. (TLS listeners run on `node:tls`:
 * see `deno.ts`.)
 *
 * @module
 */
import { UnsupportedError } from "../core/errors.ts";
import { formatAddr } from "./_addr.ts";
import { handOver } from "./_callbacks.ts";
import { closeQuietly, DenoConnection, toAddr } from "./_deno_connection.ts";
import { type DenoConn, denoErrorCode, denoGlobal, type DenoListener } from "./_deno_types.ts";
import { listenError } from "./_errors.ts";
import { listenUnixSocket, removeUnixSocketFile } from "./_unix_path.ts";
import type { Addr, Connection, Listener, TcpAddr, Transport, UnixListenOptions } from "./types.ts";

/** Pause before accepting again after an unexpected accept failure (EMFILE and the like). */
const ACCEPT_RETRY_MS = 100;

/** A `Deno.Listener` behind the {@linkcode Listener} contract: it accepts until closed. */
class DenoListenerHandle implements Listener {
  readonly addr: Addr;
  readonly #listener: DenoListener;
  readonly #path: string | null;
  readonly #acceptLoop: Promise<void>;
  #closing: Promise<void> | null = null;

  constructor(listener: DenoListener, path: string | null, onConnection: (conn: Connection) => void) {
    this.#listener = listener;
    this.#path = path;
    this.addr = toAddr(listener.addr);
    this.#acceptLoop = this.#accept(onConnection);
  }

  close(): Promise<void> {
    // One shared promise: a second close must not unlink a socket file someone else bound since.
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Already closed underneath.
    }
    await this.#acceptLoop;
    if (this.#path !== null) await removeUnixSocketFile(this.#path);
  }

  async #accept(onConnection: (conn: Connection) => void): Promise<void> {
    const badResource = denoGlobal().errors.BadResource;
    for (;;) {
      let conn: DenoConn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#closing !== null || err instanceof badResource) return;
        // Out of descriptors and the like: keep serving, but do not spin on a persistent failure.
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        if (this.#closing !== null) return;
        continue;
      }
      if (this.#closing !== null) {
        conn.close();
        return;
      }
      handOver(new DenoConnection(conn), onConnection);
    }
  }
}

/**
 * Listens on TCP with `Deno.listen`. `reusePort` needs `--unstable-net`: without it Deno would end the
 * process, so it is refused with `UnsupportedError` first.
 */
export function listenDenoTcp(
  target: TcpAddr,
  reusePort: boolean,
  onConnection: (conn: Connection) => void,
): Listener {
  const ns = denoGlobal();
  const { hostname, port } = target;
  // listenDatagram exists only under --unstable-net, so it tells whether reusePort is safe.
  if (reusePort && typeof ns.listenDatagram !== "function") {
    throw new UnsupportedError(
      `Cannot listen on ${formatAddr(target)} with reusePort: Deno needs the --unstable-net flag for it`,
    );
  }
  let listener: DenoListener;
  try {
    listener = ns.listen(
      reusePort ? { transport: "tcp", hostname, port, reusePort: true } : { hostname, port },
    );
  } catch (err) {
    throw listenError(err, target, denoErrorCode(err));
  }
  return new DenoListenerHandle(listener, null, onConnection);
}

/**
 * Listens on a UNIX socket with `Deno.listen`, replacing a stale socket file (`connect` probes it).
 */
export async function listenDenoUnix(
  options: UnixListenOptions,
  connect: Transport["connect"],
  onConnection: (conn: Connection) => void,
): Promise<Listener> {
  const ns = denoGlobal();
  const path = options.path;
  const listener = await listenUnixSocket(options, connect, () => {
    try {
      return ns.listen({ transport: "unix", path });
    } catch (err) {
      throw listenError(err, { transport: "unix", path }, denoErrorCode(err));
    }
  }, closeQuietly);
  return new DenoListenerHandle(listener, path, onConnection);
}
