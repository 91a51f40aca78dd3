/**
 * The WebSocket opening handshake, server side (RFC 6455 §4.2), no I/O: what a request head asks for
 * ({@linkcode judgeUpgrade}), the `Sec-WebSocket-Accept` value ({@linkcode webSocketAccept}) and the
 * answers' bytes. No extension or subprotocol is negotiated: compression is declined by not naming it.
 *
 * @module
 */
import type { RequestHead } from "./request_head.ts";

/** The options of a listener's WebSocket upgrade (see `WebSocketListenerOptions`). */
export interface UpgradePolicy {
  /** The one path (the request target without its query) that upgrades. */
  readonly path: string;
  /** The origins allowed, or `undefined` to let every origin through (to the handshake's own rules). */
  readonly allowedOrigins: readonly string[] | undefined;
}

/** What to do with a request head read on a WebSocket listener. */
export type UpgradeVerdict =
  /** Upgrade: answer 101 with `webSocketAccept(key)`. `origin` is the `Origin` header (a browser), if any. */
  | { readonly kind: "upgrade"; readonly key: string; readonly origin: string | undefined }
  /** Not an upgrade: hand the request, bytes intact, to the unknown-client path. */
  | { readonly kind: "pass" }
  /** Refuse with `status` and close; `reason` is for the log and the body. */
  | { readonly kind: "refuse"; readonly status: 400 | 403 | 404 | 426; readonly reason: string };

const KEY_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** True when `head` asks to upgrade to WebSocket (`Upgrade: websocket` and `Connection: upgrade`). */
function asksWebSocket(head: RequestHead): boolean {
  const upgrade = head.headers.get("upgrade");
  if (upgrade === undefined) return false;
  return upgrade.split(",").some((p) => p.trim().toLowerCase() === "websocket");
}

/**
 * Judges a request head on a WebSocket listener: an upgrade at `policy.path` from an allowed origin
 * upgrades; an upgrade elsewhere gets 404, from another origin 403, with a version other than 13 (or
 * without the headers RFC 6455 requires) 426 or 400; anything that is not an upgrade passes.
 */
export function judgeUpgrade(head: RequestHead, policy: UpgradePolicy): UpgradeVerdict {
  if (!asksWebSocket(head)) return { kind: "pass" };
  const query = head.target.indexOf("?");
  const path = query < 0 ? head.target : head.target.slice(0, query);
  if (path !== policy.path) return { kind: "refuse", status: 404, reason: `no WebSocket at ${path}` };
  if (head.method !== "GET" || head.version !== "HTTP/1.1") {
    return { kind: "refuse", status: 400, reason: "a WebSocket upgrade must be an HTTP/1.1 GET" };
  }
  if (!head.connection.includes("upgrade")) {
    return { kind: "refuse", status: 400, reason: "the Connection header does not name upgrade" };
  }
  if (head.headers.get("sec-websocket-version")?.trim() !== "13") {
    return { kind: "refuse", status: 426, reason: "only WebSocket version 13 is spoken" };
  }
  const key = head.headers.get("sec-websocket-key")?.trim() ?? "";
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key)) {
    return { kind: "refuse", status: 400, reason: "Sec-WebSocket-Key is not 16 bytes in base64" };
  }
  const origin = head.headers.get("origin")?.trim();
  if (
    origin !== undefined && policy.allowedOrigins !== undefined && !policy.allowedOrigins.includes(origin)
  ) {
    return { kind: "refuse", status: 403, reason: `origin ${origin} is not allowed` };
  }
  return { kind: "upgrade", key, origin };
}

/** The `Sec-WebSocket-Accept` value for a request's `Sec-WebSocket-Key`: base64(SHA-1(key + GUID)). */
export async function webSocketAccept(key: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + KEY_GUID)),
  );
  let binary = "";
  for (const byte of digest) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** The 101 answer that completes the upgrade. */
export function switchingProtocols(accept: string): Uint8Array {
  return new TextEncoder().encode(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  413: "Content Too Large",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
};

/** A short HTTP error answer that closes the connection (426 names the version spoken). */
export function httpErrorAnswer(status: number, reason: string): Uint8Array {
  const body = `${reason}\n`;
  const extra = status === 426 ? "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n" : "";
  return new TextEncoder().encode(
    `HTTP/1.1 ${status} ${
      REASONS[status] ?? "Error"
    }\r\n${extra}Content-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${new TextEncoder().encode(body).length}\r\nConnection: close\r\n\r\n${body}`,
  );
}
