import { describe, expect, it } from "vitest";
import {
  fanOutProgress,
  jsonLinesProgress,
  type ProgressEvent,
  throttleProgress,
} from "../src/index.js";

describe("progress", () => {
  it("throttles bytes events per task and flushes the last one before done", () => {
    let now = 0;
    const seen: ProgressEvent[] = [];
    const l = throttleProgress(
      (e) => seen.push(e),
      100,
      () => now,
    );
    l({ type: "start", task: "t", total: 1000 });
    for (let i = 1; i <= 10; i++) {
      now += 30;
      l({ type: "bytes", task: "t", done: i * 10, total: 1000 });
    }
    l({ type: "done", task: "t", bytes: 100 });
    const bytes = seen.filter((e) => e.type === "bytes").map((e) => (e as { done: number }).done);
    // first always passes, then at most one per 100 ms, and the last (100) before done
    expect(bytes[0]).toBe(10);
    expect(bytes.at(-1)).toBe(100);
    expect(bytes.length).toBeLessThan(6);
    expect(seen.at(-1)?.type).toBe("done");
    expect(seen[0]?.type).toBe("start");
  });

  it("lets a completed transfer through immediately and keeps tasks apart", () => {
    const seen: ProgressEvent[] = [];
    const l = throttleProgress(
      (e) => seen.push(e),
      1000,
      () => 5,
    );
    l({ type: "bytes", task: "a", done: 1, total: 2 });
    l({ type: "bytes", task: "b", id: "x", done: 1 });
    l({ type: "bytes", task: "a", done: 2, total: 2 });
    expect(seen).toHaveLength(3);
  });

  it("renders JSON lines", () => {
    const out: string[] = [];
    const l = fanOutProgress(
      jsonLinesProgress({ write: (s) => out.push(s) }, () => 0),
      undefined,
    );
    l({ type: "warn", task: "ostree.import.layer", message: "dropped paths" });
    expect(out).toHaveLength(1);
    expect(out[0]!.endsWith("\n")).toBe(true);
    expect(JSON.parse(out[0]!)).toEqual({
      ts: "1970-01-01T00:00:00.000Z",
      type: "warn",
      task: "ostree.import.layer",
      message: "dropped paths",
    });
  });
});
