import { describe, expect, it } from "vitest";
import { concatBytes, digestOf, isImageModeError, MediaType, MemoryTarget } from "../src/index.js";

const bytes = new TextEncoder().encode('{"schemaVersion":2}');
const desc = { mediaType: MediaType.OciManifest, digest: digestOf(bytes), size: bytes.length };

describe("MemoryTarget", () => {
  it("stores verified content, resolves tags and digests", async () => {
    const t = new MemoryTarget();
    expect(await t.exists(desc)).toBe(false);
    await t.push(desc, bytes);
    expect(await t.exists(desc)).toBe(true);
    const out: Uint8Array[] = [];
    for await (const c of await t.fetch(desc)) out.push(c);
    expect(new TextDecoder().decode(concatBytes(out))).toBe('{"schemaVersion":2}');
    await t.tag(desc, "v1");
    expect(await t.resolve("v1")).toEqual(desc);
    expect(await t.resolve(desc.digest)).toEqual(desc);
    expect(t.listTags()).toEqual(["v1"]);
  });

  it("refuses content that does not match and tags of missing blobs", async () => {
    const t = new MemoryTarget();
    const err = await t
      .push({ ...desc, digest: digestOf("other") }, bytes)
      .catch((e: unknown) => e);
    expect(isImageModeError(err, "DIGEST_MISMATCH")).toBe(true);
    expect(await t.exists({ ...desc, digest: digestOf("other") })).toBe(false);
    expect(isImageModeError(await t.tag(desc, "x").catch((e: unknown) => e), "NOT_FOUND")).toBe(
      true,
    );
    expect(isImageModeError(await t.resolve("nope").catch((e: unknown) => e), "NOT_FOUND")).toBe(
      true,
    );
    expect(isImageModeError(await t.fetch(desc).catch((e: unknown) => e), "NOT_FOUND")).toBe(true);
  });
});
