import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  bytesStream,
  concatBytes,
  digestOf,
  drain,
  isImageModeError,
  readAll,
  verify,
  verifyBytes,
} from "../src/index.js";

async function* chunked(data: Uint8Array, sizes: number[]): AsyncIterable<Uint8Array> {
  let off = 0;
  let i = 0;
  while (off < data.length) {
    const n = Math.max(1, sizes[i++ % Math.max(1, sizes.length)] ?? 1);
    yield data.subarray(off, off + n);
    off += n;
  }
}

async function errorOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe("verify(stream, descriptor)", () => {
  test.prop([
    fc.uint8Array({ maxLength: 4096 }),
    fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 8 }),
  ])("passes the exact bytes through when size and digest match", async (data, sizes) => {
    const out: Uint8Array[] = [];
    for await (const c of verify(chunked(data, sizes), {
      digest: digestOf(data),
      size: data.length,
    }))
      out.push(c);
    expect(Buffer.from(concatBytes(out)).equals(Buffer.from(data))).toBe(true);
  });

  test.prop([
    fc.uint8Array({ minLength: 1, maxLength: 2048 }),
    fc.nat(),
    fc.integer({ min: 1, max: 255 }),
  ])("any single flipped byte fails with DIGEST_MISMATCH at EOF", async (data, pos, flip) => {
    const bad = Uint8Array.from(data);
    const i = pos % bad.length;
    bad[i] = bad[i]! ^ flip;
    const err = await errorOf(
      drain(verify(bytesStream(bad), { digest: digestOf(data), size: data.length })),
    );
    expect(isImageModeError(err, "DIGEST_MISMATCH")).toBe(true);
    expect((err as { data: Record<string, unknown> }).data.expected).toBe(digestOf(data));
  });

  test.prop([fc.uint8Array({ minLength: 1, maxLength: 2048 }), fc.integer({ min: 1, max: 100 })])(
    "too long fails with SIZE_MISMATCH before reading past the limit; too short fails at EOF",
    async (data, delta) => {
      const d = { digest: digestOf(data), size: data.length };
      let pulled = 0;
      async function* counting(): AsyncIterable<Uint8Array> {
        for (let i = 0; i < data.length + delta; i++) {
          pulled++;
          yield new Uint8Array([data[i % data.length]!]);
        }
      }
      const long = await errorOf(drain(verify(counting(), d)));
      expect(isImageModeError(long, "SIZE_MISMATCH")).toBe(true);
      expect(pulled).toBe(data.length + 1);
      const short = await errorOf(drain(verify(bytesStream(data.subarray(0, data.length - 1)), d)));
      expect(isImageModeError(short, "SIZE_MISMATCH")).toBe(true);
    },
  );

  it("honours an aborted signal", async () => {
    const ac = new AbortController();
    ac.abort(new Error("stop"));
    const data = new Uint8Array([1, 2, 3]);
    const err = await errorOf(
      drain(verify(bytesStream(data), { digest: digestOf(data), size: 3 }, { signal: ac.signal })),
    );
    expect(isImageModeError(err, "ABORTED")).toBe(true);
  });

  it("verifyBytes checks size then digest", () => {
    const data = new TextEncoder().encode("abc");
    expect(() => verifyBytes(data, { digest: digestOf(data), size: 3 })).not.toThrow();
    expect(() => verifyBytes(data, { digest: digestOf(data), size: 4 })).toThrow(/expected 4/);
    expect(() => verifyBytes(data, { digest: digestOf("abd"), size: 3 })).toThrow(
      /digest mismatch/,
    );
  });
});

describe("readAll(stream, limit)", () => {
  test.prop([
    fc.uint8Array({ maxLength: 3000 }),
    fc.array(fc.integer({ min: 1, max: 500 }), { minLength: 1, maxLength: 5 }),
    fc.nat({ max: 3500 }),
  ])(
    "returns the bytes when within the limit, else SIZE_MISMATCH without reading further",
    async (data, sizes, limit) => {
      let consumed = 0;
      async function* src(): AsyncIterable<Uint8Array> {
        for await (const c of chunked(data, sizes)) {
          consumed += c.length;
          yield c;
        }
      }
      if (data.length <= limit) {
        const got = await readAll(src(), limit);
        expect(Buffer.from(got).equals(Buffer.from(data))).toBe(true);
      } else {
        const err = await errorOf(readAll(src(), limit, { what: "manifest" }));
        expect(isImageModeError(err, "SIZE_MISMATCH")).toBe(true);
        expect((err as Error).message).toContain("manifest exceeds the limit");
        // stops at the first chunk that crosses the limit
        expect(consumed).toBeLessThanOrEqual(limit + Math.max(...sizes));
      }
    },
  );

  it("rejects a negative limit", async () => {
    await expect(readAll(bytesStream(new Uint8Array(1)), -1)).rejects.toThrow(RangeError);
  });

  it("closes the source when it stops early", async () => {
    let closed = false;
    async function* src(): AsyncIterable<Uint8Array> {
      try {
        for (;;) yield new Uint8Array(10);
      } finally {
        closed = true;
      }
    }
    await expect(readAll(src(), 25)).rejects.toThrow(/limit/);
    expect(closed).toBe(true);
  });
});
