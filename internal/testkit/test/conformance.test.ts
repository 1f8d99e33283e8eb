import {
  type BlobStore,
  type ByteStream,
  type Descriptor,
  MemoryTarget,
  notFound,
  throwIfAborted,
  verify,
} from "@imagemode/core";
import { describe, expect, it } from "vitest";
import { BLOB_STORE_CASES } from "../src/conformance.js";
import { blobStoreConformance } from "../src/index.js";

blobStoreConformance("MemoryTarget", async () => ({ store: new MemoryTarget() }));

// The suite must also catch broken stores: each flaw below has to make its case fail.
type Flaw = "publish-before-verify" | "no-verify" | "ignore-abort" | "empty-for-missing";

class FlawedStore implements BlobStore {
  private readonly blobs = new Map<string, Uint8Array[]>();
  constructor(private readonly flaw: Flaw) {}

  async exists(d: Descriptor): Promise<boolean> {
    return this.blobs.has(d.digest);
  }

  async fetch(d: Descriptor): Promise<ByteStream> {
    const parts = this.blobs.get(d.digest);
    if (!parts) {
      if (this.flaw === "empty-for-missing") return (async function* () {})();
      throw notFound(`blob ${d.digest} not found`);
    }
    return (async function* () {
      yield* parts;
    })();
  }

  async push(
    d: Descriptor,
    content: ByteStream | Uint8Array,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    if (this.flaw !== "ignore-abort") throwIfAborted(options.signal);
    const source: ByteStream =
      content instanceof Uint8Array
        ? (async function* () {
            yield content;
          })()
        : content;
    const checked =
      this.flaw === "no-verify"
        ? source
        : verify(
            source,
            d,
            this.flaw === "ignore-abort" ? {} : options.signal ? { signal: options.signal } : {},
          );
    const parts: Uint8Array[] = [];
    if (this.flaw === "publish-before-verify") this.blobs.set(d.digest, parts);
    for await (const c of checked) parts.push(c.slice());
    this.blobs.set(d.digest, parts);
  }
}

function caseNamed(fragment: string) {
  const c = BLOB_STORE_CASES.find((x) => x.name.includes(fragment));
  if (!c) throw new Error(`no case ${fragment}`);
  return c;
}

describe("blobStoreConformance catches broken stores", () => {
  it.each([
    ["publish-before-verify", "digest mismatch"],
    ["no-verify", "digest mismatch"],
    ["no-verify", "SIZE_MISMATCH"],
    ["ignore-abort", "aborted push"],
    ["empty-for-missing", "fetch of a missing blob"],
  ] as const)("a store with flaw %s fails the case '%s'", async (flaw, fragment) => {
    await expect(caseNamed(fragment).run(new FlawedStore(flaw))).rejects.toThrow();
  });

  it("the flawed stores still pass the plain round trip (the cases above fail for the flaw)", async () => {
    for (const flaw of [
      "publish-before-verify",
      "no-verify",
      "ignore-abort",
      "empty-for-missing",
    ] as const) {
      await caseNamed("push(bytes)").run(new FlawedStore(flaw));
    }
  });
});
