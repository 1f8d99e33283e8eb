/**
 * Pulling through registries.conf mirrors: reads try each mirror in order, then the primary
 * location; writes always go to the primary.
 */
import {
  type ByteStream,
  type Descriptor,
  isImageModeError,
  type OpOptions,
  type Target,
} from "@imagemode/core";
import type { RegistryRepository } from "./registry.js";

/** A repository with pull mirrors in front of it. */
export class MirroredRepository implements Target {
  /** Where reads go, in order (mirrors first); the last is the primary. */
  readonly sources: readonly RegistryRepository[];

  constructor(sources: readonly RegistryRepository[]) {
    if (sources.length === 0) throw new RangeError("MirroredRepository needs at least one source");
    this.sources = sources;
  }

  /** The primary repository (writes go here). */
  get primary(): RegistryRepository {
    return this.sources[this.sources.length - 1] as RegistryRepository;
  }

  private async firstOk<T>(
    f: (r: RegistryRepository) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    let last: unknown;
    for (const r of this.sources) {
      try {
        return await f(r);
      } catch (e) {
        if (signal?.aborted || isImageModeError(e, "ABORTED", "DIGEST_MISMATCH", "SIZE_MISMATCH"))
          throw e;
        last = e;
      }
    }
    throw last;
  }

  resolve(reference: string, options: OpOptions = {}): Promise<Descriptor> {
    return this.firstOk((r) => r.resolve(reference, options), options.signal);
  }

  fetch(d: Descriptor, options: OpOptions = {}): Promise<ByteStream> {
    return this.firstOk((r) => r.fetch(d, options), options.signal);
  }

  async exists(d: Descriptor, options: OpOptions = {}): Promise<boolean> {
    for (const r of this.sources) {
      try {
        if (await r.exists(d, options)) return true;
      } catch (e) {
        if (options.signal?.aborted) throw e;
      }
    }
    return false;
  }

  push(d: Descriptor, content: ByteStream | Uint8Array, options: OpOptions = {}): Promise<void> {
    return this.primary.push(d, content, options);
  }

  tag(d: Descriptor, reference: string, options: OpOptions = {}): Promise<void> {
    return this.primary.tag(d, reference, options);
  }

  /** Closes every source. */
  async close(): Promise<void> {
    await Promise.all(this.sources.map((s) => s.close()));
  }
}
