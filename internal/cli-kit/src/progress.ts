import {
  jsonLinesProgress,
  type ProgressEvent,
  type ProgressListener,
  type ProgressStart,
  throttleProgress,
} from "@imagemode/core";
import { MultiBar, type Options, Presets, type SingleBar } from "cli-progress";

/** Where a CLI writes text: `process.stdout`/`process.stderr` or a test double. */
export interface TextStream {
  write(chunk: string): unknown;
  /** True when the stream is a terminal. */
  isTTY?: boolean;
}

/** How progress is shown: cli-progress bars, core's JSON lines, or plain text lines only. */
export type ProgressMode = "bar" | "jsonl" | "none";

/** A progress listener to pass as `onProgress`, and `stop()` to call when the operation ends. */
export interface ProgressRenderer {
  listener: ProgressListener;
  /** Stops the bars (idempotent; a no-op in the other modes). */
  stop(): void;
}

/** How `bar` mode draws: the bars' format, which events get a bar, what is logged above them. */
export interface BarStyle {
  /** cli-progress format (default `" {bar} {percentage}% | {name} | {value}/{total}"`). */
  format?: string;
  /** Extra cli-progress options (`clearOnComplete`, `noTTYOutput`, `notTTYSchedule`, …). */
  options?: Partial<Options>;
  /** The bar an event belongs to (default `e.id ?? e.task`); `undefined`: none. */
  key?(e: ProgressEvent): string | undefined;
  /** The payload of a new bar for a `start` event (default `{ name: (id ?? task).slice(0, 24) }`); `undefined`: no bar. */
  start?(e: ProgressStart): Record<string, unknown> | undefined;
  /** Remove a bar once its task is done (default false: it stays at 100%). */
  removeOnDone?: boolean;
  /** Text logged above the bars for events without a bar (default: warnings only). */
  log?(e: ProgressEvent): string | undefined;
  /** Throttle interval of `bytes` events in ms (default 100, core's `throttleProgress`). */
  throttleMs?: number;
}

/** Per-CLI choices of {@link progressRenderer}. */
export interface ProgressRendererOptions {
  /** The look of `bar` mode. */
  bar?: BarStyle;
  /** `none` mode: the line (without newline) written for an event, or `undefined` (default: warnings only). */
  line?(e: ProgressEvent): string | undefined;
  /** `jsonl` mode: throttle `bytes` events to one per this many ms (default: every event). */
  jsonlThrottleMs?: number;
}

/** `warning: <message>` for `warn` events, nothing for the rest. */
export function warningLine(e: ProgressEvent): string | undefined {
  return e.type === "warn" ? `warning: ${e.message}` : undefined;
}

/**
 * Renders progress events on `stream` (normally stderr): bars (`bar`), core's
 * `jsonLinesProgress` (`jsonl`), or plain lines (`none`: warnings, or what `options.line` says).
 *
 * ```ts
 * const r = progressRenderer(process.stderr.isTTY ? "bar" : "none", process.stderr);
 * try { await op({ onProgress: r.listener }); } finally { r.stop(); }
 * ```
 */
export function progressRenderer(
  mode: ProgressMode,
  stream: TextStream,
  options: ProgressRendererOptions = {},
): ProgressRenderer {
  if (mode === "jsonl") {
    const jsonl = jsonLinesProgress(stream);
    return {
      listener:
        options.jsonlThrottleMs === undefined
          ? jsonl
          : throttleProgress(jsonl, options.jsonlThrottleMs),
      stop() {},
    };
  }
  if (mode === "none") {
    const line = options.line ?? warningLine;
    return {
      listener: (e) => {
        const text = line(e);
        if (text !== undefined) stream.write(`${text}\n`);
      },
      stop() {},
    };
  }
  return barRenderer(stream, options.bar ?? {});
}

function barRenderer(stream: TextStream, style: BarStyle): ProgressRenderer {
  const multi = new MultiBar(
    {
      format: style.format ?? " {bar} {percentage}% | {name} | {value}/{total}",
      hideCursor: true,
      stream: stream as NodeJS.WritableStream,
      ...style.options,
    },
    Presets.shades_classic,
  );
  const keyOf = style.key ?? ((e: ProgressEvent) => e.id ?? e.task);
  const startOf = style.start ?? ((e: ProgressStart) => ({ name: (e.id ?? e.task).slice(0, 24) }));
  const log = style.log ?? warningLine;
  const bars = new Map<string, SingleBar>();
  const listener = throttleProgress((e: ProgressEvent) => {
    const key =
      e.type === "start" || e.type === "bytes" || e.type === "done" ? keyOf(e) : undefined;
    if (key !== undefined && e.type === "start") {
      const payload = startOf(e);
      if (payload) bars.set(key, multi.create(e.total ?? 0, 0, payload));
    } else if (key !== undefined && e.type === "bytes") bars.get(key)?.update(e.done);
    else if (key !== undefined && e.type === "done") {
      const b = bars.get(key);
      if (b) {
        b.update(b.getTotal());
        if (style.removeOnDone) {
          multi.remove(b);
          bars.delete(key);
        }
      }
    } else {
      const text = log(e);
      if (text !== undefined) multi.log(`${text}\n`);
    }
  }, style.throttleMs ?? 100);
  let stopped = false;
  return {
    listener,
    stop() {
      if (!stopped) multi.stop();
      stopped = true;
    },
  };
}
