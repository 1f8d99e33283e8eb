import type { Descriptor } from "./descriptor.js";
import type { OpOptions } from "./progress.js";
import type { ByteStream } from "./stream.js";

/** Fetches content by descriptor. Implementations verify size and digest while streaming. */
export interface Fetcher {
  fetch(descriptor: Descriptor, options?: OpOptions): Promise<ByteStream>;
}

/** A content-addressed store that can be read. */
export interface ReadOnlyBlobStore extends Fetcher {
  exists(descriptor: Descriptor, options?: OpOptions): Promise<boolean>;
}

/**
 * A content-addressed store that can be written. `push` verifies the content against the
 * descriptor and publishes it atomically: a failed or aborted push leaves nothing visible.
 */
export interface BlobStore extends ReadOnlyBlobStore {
  push(
    descriptor: Descriptor,
    content: ByteStream | Uint8Array,
    options?: OpOptions,
  ): Promise<void>;
}

/** Resolves a reference (a tag or a digest) to the descriptor of a manifest or index. */
export interface Resolver {
  resolve(reference: string, options?: OpOptions): Promise<Descriptor>;
}

/** Something images can be read from: a registry repository, an OCI layout, an archive. */
export interface ReadOnlyTarget extends ReadOnlyBlobStore, Resolver {}

/** Something images can be copied into. */
export interface Target extends BlobStore, Resolver {
  tag(descriptor: Descriptor, reference: string, options?: OpOptions): Promise<void>;
}
