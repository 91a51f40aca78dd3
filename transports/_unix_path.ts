/**
 * UNIX socket path housekeeping shared by every transport: replace a stale socket file, refuse
 * anything else, set the file's mode after binding, and remove the file on close. Transports listen
 * through {@linkcode listenUnixSocket}, which takes those steps in order.
 *
 * @module
 */
import { chmod, lstat, unlink } from "node:fs/promises";
import { AddressInUseError, ConnectionRefusedError, TransportError } from "../core/errors.ts";
import { formatAddr } from "./_addr.ts";
import { errorCode } from "./_errors.ts";
import type { Connection, UnixConnectOptions, UnixListenOptions } from "./types.ts";

/** Owner only: whoever may write a socket file may connect to it. */
export const DEFAULT_UNIX_SOCKET_MODE = 0o600;

/** What `prepareUnixSocketPath` needs from a transport: a way to knock on the path. */
export type UnixConnect = (options: UnixConnectOptions) => Promise<Connection>;

/** `Cannot listen on unix:/the/path`, the head of every message here. */
function cannotListen(path: string): string {
  return `Cannot listen on ${formatAddr({ transport: "unix", path })}`;
}

/**
 * Makes `path` free to bind. Nothing there: done. A socket file that refuses a connection was left
 * by a dead process: it is removed. A live socket, or anything that is not a socket, is never
 * touched, and an `AddressInUseError` explains why.
 */
export async function prepareUnixSocketPath(path: string, connect: UnixConnect): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if (errorCode(err) === "ENOENT") return;
    throw new TransportError(`${cannotListen(path)}: cannot inspect the path`, { cause: err });
  }
  if (!isSocket) {
    throw new AddressInUseError(`${cannotListen(path)}: a file that is not a socket exists there`);
  }
  try {
    const probe = await connect({ transport: "unix", path });
    probe.close();
  } catch (err) {
    if (err instanceof ConnectionRefusedError) {
      await removeUnixSocketFile(path);
      return;
    }
    throw new TransportError(`${cannotListen(path)}: cannot probe the existing socket`, { cause: err });
  }
  throw new AddressInUseError(`${cannotListen(path)}: a live socket is listening there`);
}

/** Removes the socket file at `path` if it is still a socket; a missing file is not an error. */
export async function removeUnixSocketFile(path: string): Promise<void> {
  try {
    if (!(await lstat(path)).isSocket()) return;
    await unlink(path);
  } catch (err) {
    if (errorCode(err) !== "ENOENT") throw err;
  }
}

/**
 * The mode a UNIX listener's socket file gets, checked before anything is bound.
 *
 * @example
 * ```ts
 * unixSocketMode({ transport: "unix", path: "/tmp/app.sock" }); // 0o600
 * ```
 */
export function unixSocketMode(options: UnixListenOptions): number {
  const mode = options.mode ?? DEFAULT_UNIX_SOCKET_MODE;
  if (typeof mode !== "number" || !Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    throw new RangeError(
      `${cannotListen(options.path)}: mode must be an integer from 0 to 0o777, got ${String(mode)}`,
    );
  }
  return mode;
}

/**
 * Sets the permission bits of a freshly bound socket file. On failure the caller must close the
 * listener; the `TransportError` says why.
 */
export async function applyUnixSocketMode(path: string, mode: number): Promise<void> {
  try {
    await chmod(path, mode);
  } catch (err) {
    const code = errorCode(err);
    throw new TransportError(
      `${cannotListen(path)}: cannot set the socket file mode to 0o${mode.toString(8)}${
        code ? ` (${code})` : ""
      }`,
      { cause: err },
    );
  }
}

/**
 * Listens on a UNIX socket the way every transport does: checks the mode, frees the path (a stale
 * socket file is replaced, anything else refused), binds with `bind`, then sets the file's mode. If
 * that last step fails, `unbind` closes the new listener and its file is removed.
 *
 * @param options The UNIX listen options.
 * @param connect The transport's own connect, to probe a socket file already there.
 * @param bind Binds `path`, throwing the transport's typed error on failure.
 * @param unbind Closes what `bind` returned.
 * @returns What `bind` returned.
 */
export async function listenUnixSocket<L>(
  options: UnixListenOptions,
  connect: UnixConnect,
  bind: (path: string) => L | Promise<L>,
  unbind: (listener: L) => void,
): Promise<L> {
  const path = options.path;
  const mode = unixSocketMode(options);
  await prepareUnixSocketPath(path, connect);
  const listener = await bind(path);
  try {
    await applyUnixSocketMode(path, mode);
  } catch (err) {
    unbind(listener);
    await removeUnixSocketFile(path).catch(() => {});
    throw err;
  }
  return listener;
}
