/**
 * Progress events: one union for every operation, with stable dotted task names
 * (`oci.fetch.blob`, `ostree.import.layer`, `deploy.checkout`, `disk.write`, `disk.qcow2`).
 * Libraries emit them through `onProgress`; they never print.
 */

/** A task starts. `total` is in bytes (or steps) when known. */
export interface ProgressStart {
  type: "start";
  task: string;
  id?: string;
  description?: string;
  total?: number;
}
/** Bytes moved for a task; `done` is cumulative. */
export interface ProgressBytes {
  type: "bytes";
  task: string;
  id?: string;
  done: number;
  total?: number;
}
/** A step of a multi-step task. */
export interface ProgressStep {
  type: "step";
  task: string;
  id?: string;
  step: number;
  steps?: number;
  description?: string;
}
/** A task finished. */
export interface ProgressDone {
  type: "done";
  task: string;
  id?: string;
  description?: string;
  bytes?: number;
}
/** Something the user should know that is not an error. */
export interface ProgressWarn {
  type: "warn";
  task: string;
  id?: string;
  message: string;
  code?: string;
}

/** Every progress event. */
export type ProgressEvent =
  | ProgressStart
  | ProgressBytes
  | ProgressStep
  | ProgressDone
  | ProgressWarn;

/** A progress callback. */
export type ProgressListener = (event: ProgressEvent) => void;

/** The options every async API takes. */
export interface OpOptions {
  signal?: AbortSignal;
  onProgress?: ProgressListener;
}

/** A monotonic clock in milliseconds (injectable for tests). */
export type Clock = () => number;

/**
 * Wraps a listener so that `bytes` events of one task/id pass at most once per `intervalMs`
 * (the last one before a `done` always passes). Other events pass straight through.
 */
export function throttleProgress(
  listener: ProgressListener,
  intervalMs = 100,
  clock: Clock = () => performance.now(),
): ProgressListener {
  const last = new Map<string, number>();
  const pending = new Map<string, ProgressBytes>();
  return (e) => {
    const key = `${e.task}\u0000${e.id ?? ""}`;
    if (e.type === "bytes") {
      const now = clock();
      const prev = last.get(key);
      const complete = e.total !== undefined && e.done >= e.total;
      if (prev === undefined || now - prev >= intervalMs || complete) {
        last.set(key, now);
        pending.delete(key);
        listener(e);
      } else {
        pending.set(key, e);
      }
      return;
    }
    if (e.type === "done") {
      const p = pending.get(key);
      if (p) listener(p);
      pending.delete(key);
      last.delete(key);
    }
    listener(e);
  };
}

/** Something with a `write(string)` method (a Node.js writable, `process.stderr`). */
export interface TextSink {
  write(text: string): unknown;
}

/** A listener that writes one JSON object a line (`--progress=jsonl`). */
export function jsonLinesProgress(
  sink: TextSink,
  clock: () => number = Date.now,
): ProgressListener {
  return (e) => {
    sink.write(`${JSON.stringify({ ts: new Date(clock()).toISOString(), ...e })}\n`);
  };
}

/** Calls every listener given (undefined ones are skipped). */
export function fanOutProgress(...listeners: (ProgressListener | undefined)[]): ProgressListener {
  const ls = listeners.filter((l): l is ProgressListener => l !== undefined);
  return (e) => {
    for (const l of ls) l(e);
  };
}
