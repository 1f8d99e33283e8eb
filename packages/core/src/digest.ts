import { createHash, type Hash } from "node:crypto";
import { invalidArgument } from "./errors.js";

/** A content digest as used by OCI: `algorithm:hex`. */
export type Digest = `sha256:${string}` | `sha512:${string}`;

/** The digest algorithms imagemode understands. */
export type DigestAlgorithm = "sha256" | "sha512";

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };

/** A parsed digest. */
export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  /** Lower-case hex encoding. */
  hex: string;
}

/** True when `value` is a well-formed `sha256:`/`sha512:` digest with lower-case hex. */
export function isDigest(value: unknown): value is Digest {
  if (typeof value !== "string") return false;
  const i = value.indexOf(":");
  if (i < 0) return false;
  const alg = value.slice(0, i);
  const hex = value.slice(i + 1);
  if (alg !== "sha256" && alg !== "sha512") return false;
  return hex.length === HEX_LENGTH[alg] && /^[0-9a-f]+$/.test(hex);
}

/**
 * Parses and validates a digest string. Throws `INVALID_ARGUMENT` naming the problem
 * (unknown algorithm, wrong length, non-hex characters).
 */
export function parseDigest(value: string): ParsedDigest {
  if (typeof value !== "string")
    throw invalidArgument(`digest must be a string, got ${typeof value}`);
  const i = value.indexOf(":");
  if (i <= 0)
    throw invalidArgument(`invalid digest "${value}": expected "algorithm:hex"`, {
      data: { digest: value },
    });
  const alg = value.slice(0, i);
  const hex = value.slice(i + 1);
  if (alg !== "sha256" && alg !== "sha512") {
    throw invalidArgument(`unsupported digest algorithm "${alg}" in "${value}"`, {
      data: { digest: value },
    });
  }
  if (hex.length !== HEX_LENGTH[alg] || !/^[0-9a-f]+$/.test(hex)) {
    throw invalidArgument(
      `invalid ${alg} digest "${value}": expected ${HEX_LENGTH[alg]} lower-case hex characters`,
      {
        data: { digest: value },
      },
    );
  }
  return { algorithm: alg, hex };
}

/** Validates a digest and returns it typed. */
export function asDigest(value: string): Digest {
  parseDigest(value);
  return value as Digest;
}

/** The digest of bytes held in memory (for small metadata: manifests, configs). */
export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = "sha256"): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}` as Digest;
}

/** An incremental hasher that also counts bytes. */
export class Digester {
  readonly algorithm: DigestAlgorithm;
  private readonly hash: Hash;
  private count = 0;
  private result: Digest | undefined;

  constructor(algorithm: DigestAlgorithm = "sha256") {
    this.algorithm = algorithm;
    this.hash = createHash(algorithm);
  }

  /** Feeds a chunk. */
  update(chunk: Uint8Array): this {
    if (this.result) throw new Error("Digester.update after digest()");
    this.hash.update(chunk);
    this.count += chunk.byteLength;
    return this;
  }

  /** Bytes seen so far. */
  get size(): number {
    return this.count;
  }

  /** The final digest (idempotent). */
  digest(): Digest {
    if (!this.result) this.result = `${this.algorithm}:${this.hash.digest("hex")}` as Digest;
    return this.result;
  }
}

/** The hex part of a digest. */
export function digestHex(d: Digest | string): string {
  return parseDigest(d).hex;
}

/** The algorithm of a digest. */
export function digestAlgorithm(d: Digest | string): DigestAlgorithm {
  return parseDigest(d).algorithm;
}
