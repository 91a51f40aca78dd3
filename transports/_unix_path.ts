/**
 * UNIX socket path housekeeping shared by every transport: replace a stale socket file, refuse
 * anything else, and remove the file on close.
 *
 * @module
 */
import { lstat, unlink } from "node:fs/promises";
import { AddressInUseError, ConnectionRefusedError, TransportError } from "../core/errors.ts";
import type { Connection, UnixConnectOptions } from "./types.ts";

/** What `prepareUnixSocketPath` needs from a transport: a way to knock on the path. */
export type UnixConnect = (options: UnixConnectOptions) => Promise<Connection>;

function errorCode(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
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
    throw new TransportError(`Cannot listen on ${path}: cannot inspect the path`, { cause: err });
  }
  if (!isSocket) {
    throw new AddressInUseError(`Cannot listen on ${path}: a file that is not a socket exists there`);
  }
  try {
    const probe = await connect({ transport: "unix", path });
    probe.close();
  } catch (err) {
    if (err instanceof ConnectionRefusedError) {
      await removeUnixSocketFile(path);
      return;
    }
    throw new TransportError(`Cannot listen on ${path}: cannot probe the existing socket`, { cause: err });
  }
  throw new AddressInUseError(`Cannot listen on ${path}: a live socket is listening there`);
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
