/**
 * The checks of what the application sends: bytes or text only, and the message lists of
 * `sendMessagesToClient` and `sendMessagesToKeyword`, each message checked before anything is queued.
 *
 * @module
 */
import { typeError } from "../options_check.ts";

const MESSAGE_TYPES = "a Uint8Array or a string";

/** Refuses anything but bytes or text as a message: no other typed array, no ArrayBuffer, no number. */
export function checkMessage(message: unknown, at: string, action: string): void {
  if (typeof message !== "string" && !(message instanceof Uint8Array)) {
    throw typeError(action, at, MESSAGE_TYPES, message);
  }
}

/**
 * The messages of `sendMessagesToClient` and `sendMessagesToKeyword` as an array, each checked,
 * before anything is queued.
 */
export function messageList(messages: unknown, action: string): (Uint8Array | string)[] {
  const list = messageArray(messages, action);
  checkMessages(list, action);
  return list as (Uint8Array | string)[];
}

/**
 * `messages` as an array (an array as it is), its items not yet checked: the send path to an open
 * connection checks them in the pass that counts their bytes (see `checkMessages` for the others).
 */
export function messageArray(messages: unknown, action: string): readonly unknown[] {
  if (Array.isArray(messages)) return messages;
  const iterable = messages as Iterable<unknown> | null | undefined;
  if (
    typeof iterable === "string" || iterable instanceof Uint8Array || iterable === null ||
    typeof iterable !== "object" || typeof iterable[Symbol.iterator] !== "function"
  ) {
    throw typeError(action, "messages", `an array or iterable of messages (${MESSAGE_TYPES} each)`, messages);
  }
  return Array.from(iterable);
}

/** Throws a `TypeError` naming the first item of `list` that is neither bytes nor text. */
export function checkMessages(list: readonly unknown[], action: string): void {
  for (let i = 0; i < list.length; i++) {
    const message = list[i];
    // Bytes first, the common case; the label is built only for a refusal (a template literal per
    // message cost a number-to-string and a string each: 12 % of an echo server's instructions).
    if (!(message instanceof Uint8Array) && typeof message !== "string") refuseMessage(list, i, action);
  }
}

/** Throws the `TypeError` for `list[index]`, which is neither bytes nor text. */
export function refuseMessage(list: readonly unknown[], index: number, action: string): never {
  checkMessage(list[index], `messages[${index}]`, action);
  throw new TypeError(`Cannot ${action}: messages[${index}] is not a message`);
}
