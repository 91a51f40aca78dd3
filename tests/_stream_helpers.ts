/**
 * What the streamed-message tests share: a core listening on loopback with a 1 MiB stream threshold, and
 * a loop that runs `ioIteration` until a client shows up in one of its sets.
 */
import type { ClientId, IoCore, IoCoreOptions } from "../mod.ts";
import { MiB } from "./_helpers.ts";

/** One TCP listener on 127.0.0.1, port 0; frames over 1 MiB are streamed. */
export const STREAM_OPTIONS: IoCoreOptions = {
  listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
  streamThresholdBytes: 1 * MiB,
};

/** Runs `ioIteration` until `id` is in the set `key` names; throws after about 20 s. */
export async function untilClientIn(
  core: IoCore,
  key: "clientsHaveMessageStream" | "clientsHaveDataToRead",
  id: ClientId,
): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if ((await core.ioIteration(50))[key].has(id)) return;
  }
  throw new Error(`Timed out waiting for ${key}`);
}
