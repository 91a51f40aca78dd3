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

/** The messages of `sendMessagesToClient` as an array, each checked, before anything is queued. */
export function messageList(messages: unknown, action: string): (Uint8Array | string)[] {
  let list = messages;
  if (!Array.isArray(list)) {
    const iterable = list as Iterable<unknown> | null | undefined;
    if (
      typeof iterable === "string" || iterable instanceof Uint8Array || iterable === null ||
      typeof iterable !== "object" || typeof iterable[Symbol.iterator] !== "function"
    ) {
      throw typeError(
        action,
        "messages",
        `an array or iterable of messages (${MESSAGE_TYPES} each)`,
        messages,
      );
    }
    list = Array.from(iterable);
  }
  const array = list as unknown[];
  for (let i = 0; i < array.length; i++) {
    const message = array[i];
    // Bytes first, the common case; the label is built only for a refusal (a template literal per
    // message cost a number-to-string and a string each: 12 % of an echo server's instructions).
    if (!(message instanceof Uint8Array) && typeof message !== "string") {
      checkMessage(message, `messages[${i}]`, action);
    }
  }
  return array as (Uint8Array | string)[];
}
