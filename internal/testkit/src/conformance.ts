import {
  type BlobStore,
  type ByteStream,
  type Descriptor,
  digestOf,
  isImageModeError,
  MediaType,
} from "@imagemode/core";
import { describe, expect, it } from "vitest";

/** What {@link blobStoreConformance} needs from an implementation: a fresh, empty store. */
export type BlobStoreFactory = () => Promise<{ store: BlobStore; cleanup?: () => Promise<void> }>;

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

function descriptorOf(data: Uint8Array): Descriptor {
  return { mediaType: MediaType.OciLayer, digest: digestOf(data), size: data.byteLength };
}

/** Deterministic pseudo-random bytes (xorshift), so failures are reproducible. */
function bytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = Math.imul(seed + 1, 0x9e3779b1) | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function* chunks(data: Uint8Array, chunkSize: number, delayMs = 0): ByteStream {
  for (let i = 0; i < data.byteLength; i += chunkSize) {
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    yield data.subarray(i, Math.min(i + chunkSize, data.byteLength));
  }
}

async function collect(stream: ByteStream): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of stream) {
    parts.push(c);
    n += c.byteLength;
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return isImageModeError(err) ? err.code : `non-ImageModeError: ${String(err)}`;
  }
  return "no error";
}

/** Fetching a missing blob fails with NOT_FOUND, either from fetch() or while reading the stream. */
async function fetchCode(store: BlobStore, d: Descriptor): Promise<string> {
  return codeOf(store.fetch(d).then(collect));
}

/** One conformance case: a name and a check run against a fresh, empty store. */
export interface BlobStoreCase {
  name: string;
  run(store: BlobStore): Promise<void>;
}

/** The cases of {@link blobStoreConformance}, in order (exported for the suite's own tests). */
export const BLOB_STORE_CASES: readonly BlobStoreCase[] = [
  {
    name: "push(bytes) then fetch returns the same bytes; exists turns true",
    async run(store: BlobStore) {
      const data = bytes(4096, 1);
      const d = descriptorOf(data);
      expect(await store.exists(d)).toBe(false);
      await store.push(d, data);
      expect(await store.exists(d)).toBe(true);
      expect(same(await collect(await store.fetch(d)), data)).toBe(true);
    },
  },

  {
    name: "push(stream) of a multi-MiB blob in uneven chunks round-trips",
    async run(store: BlobStore) {
      const data = bytes(3 * 1024 * 1024 + 17, 2);
      const d = descriptorOf(data);
      await store.push(d, chunks(data, 65_521));
      expect(await store.exists(d)).toBe(true);
      const back = await collect(await store.fetch(d));
      expect(back.byteLength).toBe(data.byteLength);
      expect(digestOf(back)).toBe(d.digest);
    },
  },

  {
    name: "the empty blob round-trips",
    async run(store: BlobStore) {
      const data = new Uint8Array(0);
      const d = descriptorOf(data);
      await store.push(d, chunks(data, 1));
      expect(await store.exists(d)).toBe(true);
      expect((await collect(await store.fetch(d))).byteLength).toBe(0);
    },
  },

  {
    name: "pushing a blob that is already there succeeds and keeps it",
    async run(store: BlobStore) {
      const data = bytes(1000, 3);
      const d = descriptorOf(data);
      await store.push(d, data);
      await store.push(d, chunks(data, 100));
      expect(same(await collect(await store.fetch(d)), data)).toBe(true);
    },
  },

  {
    name: "a digest mismatch is rejected with DIGEST_MISMATCH and nothing becomes visible",
    async run(store: BlobStore) {
      const data = bytes(2048, 4);
      const other = bytes(2048, 5);
      const d = { ...descriptorOf(data) };
      expect(await codeOf(store.push(d, chunks(other, 512)))).toBe("DIGEST_MISMATCH");
      expect(await store.exists(d)).toBe(false);
      expect(await fetchCode(store, d)).toBe("NOT_FOUND");
      const o = descriptorOf(other);
      expect(await store.exists(o)).toBe(false);
    },
  },

  {
    name: "content longer or shorter than the descriptor's size is rejected with SIZE_MISMATCH, nothing visible",
    async run(store: BlobStore) {
      const data = bytes(1500, 6);
      const long = { ...descriptorOf(data), size: 1499 };
      const short = { ...descriptorOf(data), size: 1501 };
      expect(await codeOf(store.push(long, chunks(data, 500)))).toBe("SIZE_MISMATCH");
      expect(await codeOf(store.push(short, data))).toBe("SIZE_MISMATCH");
      expect(await store.exists(long)).toBe(false);
      expect(await fetchCode(store, long)).toBe("NOT_FOUND");
    },
  },

  {
    name: "an aborted push rejects with ABORTED and leaves nothing",
    async run(store: BlobStore) {
      const data = bytes(256 * 1024, 7);
      const d = descriptorOf(data);
      const ac = new AbortController();
      const source = (async function* () {
        let n = 0;
        for await (const c of chunks(data, 16 * 1024, 2)) {
          if (++n === 3) ac.abort(new Error("test abort"));
          yield c;
        }
      })();
      expect(await codeOf(store.push(d, source, { signal: ac.signal }))).toBe("ABORTED");
      expect(await store.exists(d)).toBe(false);
      expect(await codeOf(store.push(d, data, { signal: AbortSignal.abort() }))).toBe("ABORTED");
      expect(await store.exists(d)).toBe(false);
    },
  },

  {
    name: "concurrent pushes of the same blob all succeed and store it once, intact",
    async run(store: BlobStore) {
      const data = bytes(512 * 1024, 8);
      const d = descriptorOf(data);
      await Promise.all(
        Array.from({ length: 6 }, (_, i) => store.push(d, chunks(data, 8192 + i * 1000, i % 2))),
      );
      expect(await store.exists(d)).toBe(true);
      expect(digestOf(await collect(await store.fetch(d)))).toBe(d.digest);
    },
  },

  {
    name: "concurrent pushes of different blobs do not mix",
    async run(store: BlobStore) {
      const blobs = Array.from({ length: 5 }, (_, i) => bytes(64 * 1024 + i, 20 + i));
      await Promise.all(blobs.map((b) => store.push(descriptorOf(b), chunks(b, 4096, 1))));
      for (const b of blobs)
        expect(same(await collect(await store.fetch(descriptorOf(b))), b)).toBe(true);
    },
  },

  {
    name: "fetch of a missing blob fails with NOT_FOUND; exists is false",
    async run(store: BlobStore) {
      const d = descriptorOf(bytes(10, 9));
      expect(await store.exists(d)).toBe(false);
      expect(await fetchCode(store, d)).toBe("NOT_FOUND");
    },
  },
];

/**
 * Registers a vitest `describe` suite that every {@link BlobStore} implementation must pass:
 * round trips (bytes and streams, empty and multi-MiB blobs), `exists`, a digest or size
 * mismatch rejected with nothing visible afterwards, an aborted push leaving nothing,
 * concurrent pushes of the same blob and of different blobs, and `NOT_FOUND` for a missing
 * blob. Each case gets a fresh store from `make`, and its `cleanup` runs afterwards.
 *
 * @example
 * ```ts
 * blobStoreConformance("MemoryTarget", async () => ({ store: new MemoryTarget() }));
 * ```
 */
export function blobStoreConformance(name: string, make: BlobStoreFactory): void {
  describe(`BlobStore conformance: ${name}`, () => {
    for (const c of BLOB_STORE_CASES) {
      it(c.name, async () => {
        const { store, cleanup } = await make();
        try {
          await c.run(store);
        } finally {
          await cleanup?.();
        }
      });
    }
  });
}
