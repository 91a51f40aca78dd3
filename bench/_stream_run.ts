/**
 * One run of the streamed workload (`workloads/stream.ts`): a receiver process and a sender process
 * of one runtime, one message of `bytes`, its checksum checked, throughput and each side's RSS. Shared
 * by B3 and `scripts/stream.ts`.
 *
 * @module
 */
import { startChild } from "./_proc.ts";

/** Who moves the bytes: asockio at both ends, or the runtime's own socket API at both ends. */
export type StreamContender = "asockio" | "bare";

/** Round trips of the probe connection in ms: p50, p99 and how many. */
export type ProbeLatency = [p50: number, p99: number, count: number];

/** What one run measured. */
export interface StreamRunResult {
  contender: StreamContender;
  bytes: number;
  /** From the sender's first write to the receiver's answer after the last byte. */
  seconds: number;
  mibPerSecond: number;
  /** The receiver's checksum equals the pattern's. */
  checksumOk: boolean;
  /** `cpuSeconds`: the receiver's from its start, the sender's from the transfer's start. */
  receiver: { rssBaseline: number; peakRss: number; cpuSeconds: number };
  sender: { rssBaseline: number; peakRss: number; cpuSeconds: number };
  /** The probe before the transfer (the bare pair's on its own sockets). */
  probeIdle?: ProbeLatency;
  /** The probe during the transfer. */
  probeBusy?: ProbeLatency;
}

/** How to run one end of the workload: its role and arguments to a command line. */
export type StreamCommand = (role: "receiver" | "sender", args: string[]) => string[];

/**
 * Runs one transfer of `bytes` with `contender`, the receiver pinned to CPU 0 and the sender to CPU 1
 * (where `taskset` exists); `expected` is `expectedChecksum(bytes)`.
 */
export async function runStream(
  command: StreamCommand,
  contender: StreamContender,
  bytes: number,
  expected: string,
  timeoutMs: number,
): Promise<StreamRunResult> {
  const label = `stream ${contender} ${bytes}`;
  const common = ["--api", contender, "--bytes", String(bytes)];
  const receiver = startChild(command("receiver", common), { label: `${label} receiver`, cpu: 0 });
  try {
    const ready = await receiver.next("READY", 60_000);
    const received = receiver.next("RESULT", timeoutMs);
    received.catch(() => {});
    const probe = ready.probePort === undefined ? [] : ["--probe-port", String(ready.probePort)];
    const sender = startChild(command("sender", [...common, "--port", String(ready.port), ...probe]), {
      label: `${label} sender`,
      cpu: 1,
    });
    try {
      const sent = await sender.next("RESULT", timeoutMs);
      const got = await received;
      const seconds = Number(sent.seconds);
      return {
        contender,
        bytes,
        seconds,
        mibPerSecond: bytes / 2 ** 20 / seconds,
        checksumOk: got.checksum === expected,
        receiver: {
          rssBaseline: Number(got.rssBaseline),
          peakRss: Number(got.peakRss),
          cpuSeconds: Number(got.cpuSeconds),
        },
        sender: {
          rssBaseline: Number(sent.rssBaseline),
          peakRss: Number(sent.peakRss),
          cpuSeconds: Number(sent.cpuSeconds),
        },
        probeIdle: sent.probeIdle as ProbeLatency | undefined,
        probeBusy: sent.probeBusy as ProbeLatency | undefined,
      };
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${sender.tail()}\n${receiver.tail()}`);
    } finally {
      await sender.stop(2000);
    }
  } finally {
    await receiver.stop(2000);
  }
}
