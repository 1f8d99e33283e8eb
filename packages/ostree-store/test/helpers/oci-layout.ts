/**
 * A tiny read-only OCI image layout, for tests only (the real one lives in oci-fetch, which
 * ostree-store may not import). Blobs are streamed from disk and verified while read.
 */
import { createReadStream } from "node:fs";
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  ANNOTATION_REF_NAME,
  type ByteStream,
  type Descriptor,
  digestHex,
  notFound,
  type ReadOnlyTarget,
  verify,
} from "@imagemode/core";

export class TestOciLayout implements ReadOnlyTarget {
  /** How many times each blob digest was fetched. */
  readonly fetched = new Map<string, number>();
  constructor(readonly dir: string) {}

  private blob(d: Pick<Descriptor, "digest">): string {
    return join(this.dir, "blobs", d.digest.split(":")[0] as string, digestHex(d.digest));
  }

  async resolve(reference: string): Promise<Descriptor> {
    const index = JSON.parse(await readFile(join(this.dir, "index.json"), "utf8")) as {
      manifests: Descriptor[];
    };
    const found = index.manifests.find(
      (m) => m.annotations?.[ANNOTATION_REF_NAME] === reference || m.digest === reference,
    );
    if (!found) throw notFound(`no ${reference} in ${this.dir}`);
    return found;
  }

  async exists(d: Descriptor): Promise<boolean> {
    return access(this.blob(d)).then(
      () => true,
      () => false,
    );
  }

  async fetch(d: Descriptor): Promise<ByteStream> {
    this.fetched.set(d.digest, (this.fetched.get(d.digest) ?? 0) + 1);
    return verify(createReadStream(this.blob(d), { highWaterMark: 256 * 1024 }), d);
  }
}
