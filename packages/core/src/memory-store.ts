import type { Target } from "./blob-store.js";
import type { Descriptor } from "./descriptor.js";
import { isDigest } from "./digest.js";
import { ImageModeError, invalidArgument, notFound, throwIfAborted } from "./errors.js";
import type { OpOptions } from "./progress.js";
import { type ByteStream, bytesStream, concatBytes } from "./stream.js";
import { verify } from "./verify.js";

/**
 * An in-memory {@link Target}, for tests and small metadata. Content is verified on push;
 * fetches hand out copies-free views of the stored bytes.
 */
export class MemoryTarget implements Target {
  private readonly blobs = new Map<string, Uint8Array>();
  private readonly tags = new Map<string, Descriptor>();

  async exists(descriptor: Descriptor, options: OpOptions = {}): Promise<boolean> {
    throwIfAborted(options.signal);
    return this.blobs.has(descriptor.digest);
  }

  async fetch(descriptor: Descriptor, options: OpOptions = {}): Promise<ByteStream> {
    throwIfAborted(options.signal);
    const data = this.blobs.get(descriptor.digest);
    if (!data)
      throw notFound(`blob ${descriptor.digest} not found`, {
        op: "memory.fetch",
        data: { digest: descriptor.digest },
      });
    return verify(bytesStream(data), descriptor, options.signal ? { signal: options.signal } : {});
  }

  async push(
    descriptor: Descriptor,
    content: ByteStream | Uint8Array,
    options: OpOptions = {},
  ): Promise<void> {
    throwIfAborted(options.signal);
    const source = content instanceof Uint8Array ? bytesStream(content) : content;
    const chunks: Uint8Array[] = [];
    for await (const c of verify(
      source,
      descriptor,
      options.signal ? { signal: options.signal } : {},
    ))
      chunks.push(c);
    this.blobs.set(descriptor.digest, concatBytes(chunks, descriptor.size));
  }

  async resolve(reference: string, options: OpOptions = {}): Promise<Descriptor> {
    throwIfAborted(options.signal);
    const d = this.tags.get(reference);
    if (d) return d;
    if (isDigest(reference)) {
      for (const t of this.tags.values()) if (t.digest === reference) return t;
    }
    throw notFound(`reference ${reference} not found`, {
      op: "memory.resolve",
      data: { reference },
    });
  }

  async tag(descriptor: Descriptor, reference: string, options: OpOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    if (!reference) throw invalidArgument("empty reference");
    if (!this.blobs.has(descriptor.digest)) {
      throw new ImageModeError(
        "NOT_FOUND",
        `cannot tag ${reference}: ${descriptor.digest} is not in the store`,
        { op: "memory.tag" },
      );
    }
    this.tags.set(reference, descriptor);
  }

  /** The tags held, for inspection. */
  listTags(): string[] {
    return [...this.tags.keys()].sort();
  }
}
