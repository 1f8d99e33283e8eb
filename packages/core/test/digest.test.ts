import { createHash } from "node:crypto";
import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { Digester, digestOf, isDigest, isImageModeError, parseDigest } from "../src/index.js";

describe("digests", () => {
  it("parses valid sha256 and sha512 digests", () => {
    const d = digestOf("hello");
    expect(d).toBe(`sha256:${createHash("sha256").update("hello").digest("hex")}`);
    expect(parseDigest(d)).toEqual({ algorithm: "sha256", hex: d.slice(7) });
    expect(parseDigest(digestOf("x", "sha512")).algorithm).toBe("sha512");
  });

  it.each([
    ["", "expected"],
    ["sha256", "expected"],
    ["md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported digest algorithm"],
    [`sha256:${"A".repeat(64)}`, "lower-case hex"],
    [`sha256:${"a".repeat(63)}`, "64 lower-case hex"],
    [`sha256:${"g".repeat(64)}`, "lower-case hex"],
  ])("rejects %j with INVALID_ARGUMENT", (value, msg) => {
    let err: unknown;
    try {
      parseDigest(value);
    } catch (e) {
      err = e;
    }
    expect(isImageModeError(err, "INVALID_ARGUMENT")).toBe(true);
    expect((err as Error).message).toContain(msg);
    expect(isDigest(value)).toBe(false);
  });

  test.prop([fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 })])(
    "streaming Digester equals one-shot hash for any chunking",
    (chunks) => {
      const d = new Digester();
      const h = createHash("sha256");
      let n = 0;
      for (const c of chunks) {
        d.update(c);
        h.update(c);
        n += c.length;
      }
      expect(d.digest()).toBe(`sha256:${h.digest("hex")}`);
      expect(d.size).toBe(n);
      expect(isDigest(d.digest())).toBe(true);
    },
  );
});
