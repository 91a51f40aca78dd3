/**
 * {@linkcode ProcessorState}: a connection's processor and where its callbacks stand, in one object
 * that only `ProcessorHost` writes. A leaf: the session holds one without importing the host.
 *
 * @module
 */
import type { Processor } from "../processor.ts";

/** What a processor asked for during a callback; acted on when the callback returns. */
export const ProcessorClose = { none: 0, now: 1, whenFlushed: 2 } as const;
/** One of {@linkcode ProcessorClose}'s values. */
export type ProcessorClose = typeof ProcessorClose[keyof typeof ProcessorClose];

/** One connection's processor state. The session and the scheduler read it; `ProcessorHost` writes it. */
export class ProcessorState {
  /** The processor attached to the connection, if any. */
  processor: Processor | undefined = undefined;
  /** True when the processor takes whole reads as batches (it defines `onFramesReceived`). */
  takesFrames = false;
  /** True when the processor takes streamed messages (`onMessageStream`). */
  takesStreams = false;
  /** True while a processor callback runs. */
  inCallback = false;
  /** The close the processor asked for during its current callback. */
  close: ProcessorClose = ProcessorClose.none;
  /** True while an asynchronous callback has not settled: input waits in order. */
  awaiting = false;
}

/** The state of every connection without a processor: one shared object, frozen (nothing writes it). */
export const NO_PROCESSOR: ProcessorState = Object.freeze(new ProcessorState());
