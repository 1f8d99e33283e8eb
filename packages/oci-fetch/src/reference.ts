/**
 * Image references: parsing and normalization the way the container tools do it
 * (containers/image `docker/reference`), plus the transport prefixes skopeo understands.
 */
import { type Digest, invalidArgument, parseDigest } from "@imagemode/core";

/** The registry that short names resolve to. */
export const DEFAULT_REGISTRY = "docker.io";
/** The tag used when a reference names neither a tag nor a digest. */
export const DEFAULT_TAG = "latest";

/** A fully normalized registry image reference. */
export interface ImageReference {
  /** Registry host with optional port: `docker.io`, `127.0.0.1:5000`. */
  registry: string;
  /** Repository path inside the registry: `library/fedora`. */
  repository: string;
  /** The tag, if one was given (or `latest` when neither tag nor digest was given). */
  tag?: string;
  /** The digest, if one was given. It wins over the tag when resolving. */
  digest?: Digest;
}

/** A reference with its transport, as skopeo writes them. */
export type TransportReference =
  | { transport: "docker"; image: ImageReference }
  | { transport: "oci"; path: string; tag?: string }
  | { transport: "oci-archive"; path: string; tag?: string };

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$/;
const MAX_NAME = 255;

function bad(input: string, why: string): never {
  throw invalidArgument(`invalid image reference "${input}": ${why}`, {
    op: "oci.reference.parse",
    data: { reference: input },
  });
}

/**
 * Parses and normalizes a registry image reference (no transport prefix).
 * `fedora` → `docker.io/library/fedora:latest`; `name:tag@sha256:…` keeps both, the digest wins.
 * Throws `INVALID_ARGUMENT` for malformed input.
 */
export function parseReference(input: string): ImageReference {
  if (typeof input !== "string" || input.length === 0) bad(String(input), "empty");
  if (input !== input.trim() || /\s/.test(input)) bad(input, "contains whitespace");
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const d = rest.slice(at + 1);
    try {
      parseDigest(d);
    } catch {
      bad(input, `invalid digest "${d}"`);
    }
    digest = d as Digest;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(input, `invalid tag "${tag}"`);
  }
  if (rest.length === 0) bad(input, "missing repository name");
  let registry = DEFAULT_REGISTRY;
  let path = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      first.includes(".") ||
      first.includes(":") ||
      first === "localhost" ||
      first !== first.toLowerCase()
    ) {
      if (!HOST.test(first)) bad(input, `invalid registry host "${first}"`);
      registry = first;
      path = rest.slice(slash + 1);
    }
  }
  if (registry === "index.docker.io" || registry === "registry-1.docker.io")
    registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && !path.includes("/")) path = `library/${path}`;
  for (const c of path.split("/")) {
    if (!COMPONENT.test(c)) {
      bad(
        input,
        c === ""
          ? "empty path component"
          : c !== c.toLowerCase()
            ? "repository name must be lowercase"
            : `invalid path component "${c}"`,
      );
    }
  }
  if (registry.length + 1 + path.length > MAX_NAME)
    bad(input, `name longer than ${MAX_NAME} characters`);
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return {
    registry,
    repository: path,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
  };
}

/** The canonical string of a reference: `registry/repo[:tag][@digest]`. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag === undefined ? "" : `:${ref.tag}`}${ref.digest === undefined ? "" : `@${ref.digest}`}`;
}

/** What to resolve against the registry: the digest when present, else the tag. */
export function referenceTarget(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? DEFAULT_TAG;
}

/** True when `tag` is a valid tag (`[\w][\w.-]{0,127}`). */
export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

/**
 * Parses a reference with a transport prefix: `docker://REF`, `oci:DIR[:TAG]`,
 * `oci-archive:FILE[:TAG]`. Like containers/image, the path ends at the first `:`.
 */
export function parseTransportReference(input: string): TransportReference {
  const colon = input.indexOf(":");
  if (colon <= 0)
    throw invalidArgument(
      `invalid reference "${input}": expected TRANSPORT:REFERENCE (docker://, oci:, oci-archive:)`,
      { data: { reference: input } },
    );
  const transport = input.slice(0, colon);
  const rest = input.slice(colon + 1);
  switch (transport) {
    case "docker": {
      if (!rest.startsWith("//"))
        throw invalidArgument(
          `invalid reference "${input}": docker references start with docker://`,
          { data: { reference: input } },
        );
      return { transport: "docker", image: parseReference(rest.slice(2)) };
    }
    case "oci":
    case "oci-archive": {
      const c = rest.indexOf(":");
      const path = c >= 0 ? rest.slice(0, c) : rest;
      const tag = c >= 0 ? rest.slice(c + 1) : undefined;
      if (path.length === 0)
        throw invalidArgument(`invalid reference "${input}": empty path`, {
          data: { reference: input },
        });
      if (tag !== undefined && !/^[A-Za-z0-9._\-:@/+]+$/.test(tag)) {
        throw invalidArgument(`invalid reference "${input}": invalid tag "${tag}"`, {
          data: { reference: input },
        });
      }
      return { transport, path, ...(tag === undefined || tag === "" ? {} : { tag }) };
    }
    default:
      throw invalidArgument(
        `unknown transport "${transport}" in "${input}" (supported: docker, oci, oci-archive)`,
        { data: { reference: input } },
      );
  }
}

/** The string form of a transport reference. */
export function formatTransportReference(ref: TransportReference): string {
  if (ref.transport === "docker") return `docker://${formatReference(ref.image)}`;
  return `${ref.transport}:${ref.path}${ref.tag === undefined ? "" : `:${ref.tag}`}`;
}
