/**
 * The transport on `node:net` and `node:tls`: native on Node, and selectable on Deno and Bun (through
 * their `node:net` compatibility) to compare against their own socket APIs. Its connections and
 * listeners live in `_node_socket.ts`, which the Deno transport shares for mutual TLS.
 *
 * @module
 */
import { connect as netConnect, createServer, type Socket } from "node:net";
import { DEFAULT_HOSTNAME } from "./_addr.ts";
import { handOver } from "./_callbacks.ts";
import { bindNodeDatagram } from "./_node_datagram.ts";
import { connectError, unknownTransportError } from "./_errors.ts";
import {
  connectNodeTls,
  listenNodeTls,
  listenServer,
  netListenOptions,
  NodeListener,
  socketConnection,
  tcpAddr,
} from "./_node_socket.ts";
import { checkTlsConnect, checkTlsListen } from "./_tls.ts";
import { listenUnixSocket } from "./_unix_path.ts";
import type {
  Addr,
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
 * The transport on `node:net`. Native on Node; on Deno and Bun it runs on their `node:net` compatibility,
 * which makes it a baseline to compare their own transports with.
 *
 * @example Echo server and client on node:net
 * ```ts
 * import { nodeTransport } from "@asockio/core/transports";
 * const listener = await nodeTransport.listen({ transport: "tcp" }, (conn) => {
 *   conn.setHandler({
 *     onData: (chunk) => conn.write(chunk),
 *     onDrain: () => {},
 *     onEnd: () => conn.closeWrite(),
 *     onClose: () => {},
 *   });
 * });
 * const client = await nodeTransport.connect({ transport: "tcp", port: (listener.addr as { port: number }).port });
 * client.setHandler({
 *   onData: (chunk) => console.log(new TextDecoder().decode(chunk)),
 *   onDrain: () => {},
 *   onEnd: () => client.close(),
 *   onClose: () => listener.close(),
 * });
 * client.write(new TextEncoder().encode("hello"));
 * client.closeWrite();
 * ```
 */
export const nodeTransport: Transport = {
  name: "node",

  async listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
    if (options.transport === "tls") return listenNodeTls(checkTlsListen(options), onConnection);
    if (options.transport !== "tcp" && options.transport !== "unix") {
      throw unknownTransportError("listen", options);
    }
    const unixPath = options.transport === "unix" ? options.path : undefined;
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      // Belt and braces: reading must not start before setHandler, whatever pauseOnConnect does.
      socket.pause();
      handOver(socketConnection(socket, unixPath, true), onConnection);
    });
    if (options.transport === "unix") {
      const path = options.path;
      await listenUnixSocket(
        options,
        nodeTransport.connect,
        () => listenServer(server, { path }, { transport: "unix", path }),
        () => server.close(),
      );
      return new NodeListener(server, undefined, { transport: "unix", path });
    }
    const target: TcpAddr = {
      transport: "tcp",
      hostname: options.hostname ?? DEFAULT_HOSTNAME,
      port: options.port ?? 0,
    };
    await listenServer(server, netListenOptions(target, options.reusePort === true), target);
    const bound = server.address();
    const addr = typeof bound === "object" && bound !== null
      ? tcpAddr(bound.address, bound.port)
      : tcpAddr(undefined, undefined);
    return new NodeListener(server, undefined, addr);
  },

  connect(options: ConnectOptions): Promise<Connection> {
    if (options.transport === "tls") {
      try {
        return connectNodeTls(checkTlsConnect(options));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise((resolve, reject) => {
      let socket: Socket;
      let unixPath: string | undefined;
      let target: Addr;
      if (options.transport === "unix") {
        unixPath = options.path;
        target = { transport: "unix", path: unixPath };
        socket = netConnect({ path: unixPath, allowHalfOpen: true });
      } else if (options.transport === "tcp") {
        const host = options.hostname ?? DEFAULT_HOSTNAME;
        target = { transport: "tcp", hostname: host, port: options.port };
        socket = netConnect({ host, port: options.port, allowHalfOpen: true });
      } else {
        throw unknownTransportError("connect", options);
      }
      // Paused explicitly so that adding the data listener in setHandler does not start the flow.
      socket.pause();
      const onError = (err: Error) => {
        socket.destroy();
        reject(connectError(err, target));
      };
      socket.once("error", onError);
      socket.once("connect", () => {
        socket.off("error", onError);
        resolve(socketConnection(socket, unixPath, false));
      });
    });
  },

  bindDatagram(options: DatagramBindOptions): Promise<DatagramSocket> {
    return bindNodeDatagram(options);
  },
};
