/**
 * The Deno transport, on Deno's own `Deno.listen` / `Deno.connect` (TCP and UNIX sockets) and
 * `Deno.connectTls` (TLS clients). TLS listeners run on `node:tls` (through `_node_socket.ts`, shared
 * with the node transport): `Deno.listenTls` can neither drop a client that never completes its
 * handshake nor ask for a client certificate. A client certificate together with a `serverName`,
 * which `Deno.startTls` cannot combine, goes through `node:tls` too.
 *
 * Its connections are in `_deno_connection.ts`, its listeners in `_deno_listener.ts`, its TLS clients
 * in `_deno_tls.ts`.
 *
 * @module
 */
import { DEFAULT_HOSTNAME } from "./_addr.ts";
import { DenoConnection } from "./_deno_connection.ts";
import { bindDenoDatagram } from "./_deno_datagram.ts";
import { listenDenoTcp, listenDenoUnix } from "./_deno_listener.ts";
import { connectDenoTls } from "./_deno_tls.ts";
import { denoErrorCode, denoGlobal } from "./_deno_types.ts";
import { connectError, unknownTransportError } from "./_errors.ts";
import { connectNodeTls, listenNodeTls } from "./_node_socket.ts";
import { checkTlsConnect, checkTlsListen } from "./_tls.ts";
import type {
  Connection,
  ConnectOptions,
  DatagramBindOptions,
  DatagramSocket,
  Listener,
  ListenOptions,
  TcpAddr,
  Transport,
} from "./types.ts";

/**
 * The transport on Deno's native sockets. Needs Deno; `reusePort` on TCP also needs `--unstable-net`.
 *
 * @example Echo server on a UNIX socket
 * ```ts
 * import { denoTransport } from "@asockio/core/transports";
 * const listener = await denoTransport.listen({ transport: "unix", path: "/tmp/echo.sock" }, (conn) => {
 *   conn.setHandler({
 *     onData: (chunk) => conn.write(chunk),
 *     onDrain: () => {},
 *     onEnd: () => conn.closeWrite(),
 *     onClose: () => {},
 *   });
 * });
 * await listener.close();
 * ```
 */
export const denoTransport: Transport = {
  name: "deno",

  async listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
    if (options.transport === "unix") {
      return await listenDenoUnix(options, denoTransport.connect, onConnection);
    }
    if (options.transport === "tls") {
      // Deno.listenTls cannot drop a client that never sends its ClientHello: neither its conn.close()
      // nor its listener's frees the socket until the handshake ends (denoland/deno#14547), so anyone
      // could hold descriptors forever. node:tls can (and can also ask for a client certificate).
      return listenNodeTls(checkTlsListen(options), onConnection);
    }
    if (options.transport !== "tcp") throw unknownTransportError("listen", options);
    const target: TcpAddr = {
      transport: "tcp",
      hostname: options.hostname ?? DEFAULT_HOSTNAME,
      port: options.port ?? 0,
    };
    return listenDenoTcp(target, options.reusePort === true, onConnection);
  },

  async connect(options: ConnectOptions): Promise<Connection> {
    const ns = denoGlobal();
    if (options.transport === "tls") {
      const checked = checkTlsConnect(options);
      // Deno.startTls (needed for serverName) takes no client certificate: that pair goes through node:tls.
      if (checked.serverName !== undefined && checked.cert !== undefined) return connectNodeTls(checked);
      return connectDenoTls(checked);
    }
    if (options.transport === "unix") {
      try {
        return new DenoConnection(await ns.connect({ transport: "unix", path: options.path }));
      } catch (err) {
        throw connectError(err, { transport: "unix", path: options.path }, denoErrorCode(err));
      }
    }
    if (options.transport !== "tcp") throw unknownTransportError("connect", options);
    const target: TcpAddr = {
      transport: "tcp",
      hostname: options.hostname ?? DEFAULT_HOSTNAME,
      port: options.port,
    };
    try {
      return new DenoConnection(await ns.connect({ hostname: target.hostname, port: target.port }));
    } catch (err) {
      throw connectError(err, target, denoErrorCode(err));
    }
  },

  bindDatagram(options: DatagramBindOptions): Promise<DatagramSocket> {
    return bindDenoDatagram(denoGlobal(), options, denoErrorCode);
  },
};
