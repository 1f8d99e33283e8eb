import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { ExtentMap, FileBlockSink, offsetSink } from "../src/block-sink.js";

describe("ExtentMap", () => {
  test.prop([
    fc.array(fc.tuple(fc.nat(2000), fc.integer({ min: 1, max: 300 })), { maxLength: 40 }),
  ])("matches a byte-set model", (ranges) => {
    const m = new ExtentMap();
    const model = new Uint8Array(2400);
    for (const [o, l] of ranges) {
      m.add(o, l);
      model.fill(1, o, o + l);
    }
    const ex = m.extents();
    const got = new Uint8Array(2400);
    for (let i = 0; i < ex.length; i++) {
      const e = ex[i]!;
      got.fill(1, e.offset, e.offset + e.length);
      if (i > 0) expect(e.offset).toBeGreaterThan(ex[i - 1]!.offset + ex[i - 1]!.length);
    }
    expect(got).toEqual(model);
    for (let o = 0; o < 2400; o += 37) {
      const any = model.subarray(o, o + 50).some((b) => b === 1);
      expect(m.overlaps(o, 50)).toBe(any);
    }
  });
});

describe("FileBlockSink", () => {
  it("keeps holes, records extents, bounds-checks", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sink-"));
    try {
      const s = await FileBlockSink.create(join(dir, "d"), 64 << 20);
      await s.write(1 << 20, new Uint8Array(4096).fill(7));
      await s.write(8 << 20, new Uint8Array(1 << 20)); // zeros over a hole: skipped
      const part = offsetSink(s, 2 << 20, 4096);
      await part.write(0, new Uint8Array([1, 2, 3]));
      await expect(part.write(4095, new Uint8Array(2))).rejects.toMatchObject({
        code: "INVALID_ARGUMENT",
      });
      await s.close();
      expect(s.written.extents()).toEqual([
        { offset: 1 << 20, length: 4096 },
        { offset: 2 << 20, length: 3 },
      ]);
      const st = await stat(join(dir, "d"));
      expect(st.size).toBe(64 << 20);
      expect(st.blocks * 512).toBeLessThan(1 << 20);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
