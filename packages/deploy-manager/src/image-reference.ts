import { invalidArgument } from "@imagemode/core";

/** How an image's signature is checked, as bootc's `ImageReference.signature` says it. */
export type ImageSignature = { ostreeRemote: string } | "containerPolicy" | "insecure";

/** bootc's `ImageReference`: what a deployment tracks. */
export interface ImageReference {
  /** The image name in its transport's syntax (`quay.io/org/os:tag`, `/path/layout:tag`). */
  image: string;
  /** `registry`, `oci`, `oci-archive`, `docker-archive`, `containers-storage`, `dir`. */
  transport: string;
  signature?: ImageSignature;
}

const TRANSPORTS = [
  "registry",
  "oci",
  "oci-archive",
  "docker-archive",
  "containers-storage",
  "dir",
];

function splitTransport(s: string): { transport: string; image: string } {
  if (s.startsWith("docker://"))
    return { transport: "registry", image: s.slice("docker://".length) };
  if (s.startsWith("registry:"))
    return { transport: "registry", image: s.slice("registry:".length) };
  const i = s.indexOf(":");
  if (i > 0 && TRANSPORTS.includes(s.slice(0, i)))
    return { transport: s.slice(0, i), image: s.slice(i + 1) };
  throw invalidArgument(
    `unknown image transport in ${JSON.stringify(s)} (expected docker://, registry:, oci:, oci-archive:, …)`,
  );
}

/**
 * Parses the `container-image-reference` of an origin file
 * (`ostree-unverified-registry:quay.io/x:tag`, `ostree-unverified-image:oci:/dir:tag`,
 * `ostree-image-signed:docker://…`, `ostree-remote-image:REMOTE:docker://…`,
 * `ostree-remote-registry:REMOTE:name`).
 */
export function parseOstreeImageReference(s: string): ImageReference {
  const fail = () =>
    invalidArgument(`invalid ostree image reference ${JSON.stringify(s)}`, {
      data: { reference: s },
    });
  const i = s.indexOf(":");
  if (i <= 0) throw fail();
  const scheme = s.slice(0, i);
  const rest = s.slice(i + 1);
  if (!rest) throw fail();
  switch (scheme) {
    case "ostree-unverified-registry":
      return { image: rest, transport: "registry", signature: "insecure" };
    case "ostree-unverified-image":
      return { ...splitTransport(rest), signature: "insecure" };
    case "ostree-image-signed":
      return { ...splitTransport(rest), signature: "containerPolicy" };
    case "ostree-remote-registry": {
      const j = rest.indexOf(":");
      if (j <= 0) throw fail();
      return {
        image: rest.slice(j + 1),
        transport: "registry",
        signature: { ostreeRemote: rest.slice(0, j) },
      };
    }
    case "ostree-remote-image": {
      const j = rest.indexOf(":");
      if (j <= 0) throw fail();
      return {
        ...splitTransport(rest.slice(j + 1)),
        signature: { ostreeRemote: rest.slice(0, j) },
      };
    }
    default:
      throw fail();
  }
}

/** The inverse of {@link parseOstreeImageReference}, in the form bootc writes. */
export function formatOstreeImageReference(ref: ImageReference): string {
  const sig = ref.signature ?? "insecure";
  const transported =
    ref.transport === "registry" ? `docker://${ref.image}` : `${ref.transport}:${ref.image}`;
  if (typeof sig === "object") {
    return ref.transport === "registry"
      ? `ostree-remote-registry:${sig.ostreeRemote}:${ref.image}`
      : `ostree-remote-image:${sig.ostreeRemote}:${transported}`;
  }
  if (sig === "containerPolicy") return `ostree-image-signed:${transported}`;
  return ref.transport === "registry"
    ? `ostree-unverified-registry:${ref.image}`
    : `ostree-unverified-image:${transported}`;
}

/**
 * An image reference from what a user types on a command line: `docker://host/x:tag`, a bare
 * `host/x:tag` (registry), `oci:/dir[:tag]`, `oci-archive:/file[:tag]`.
 */
export function imageReferenceFromUser(s: string): ImageReference {
  if (!s) throw invalidArgument("empty image reference");
  if (
    /^(docker:\/\/|registry:|oci:|oci-archive:|docker-archive:|containers-storage:|dir:)/.test(s)
  ) {
    return { ...splitTransport(s), signature: "insecure" };
  }
  return { image: s, transport: "registry", signature: "insecure" };
}

/** The reference in the transport form the CLIs take (`docker://…`, `oci:…`). */
export function transportString(ref: ImageReference): string {
  return ref.transport === "registry" ? `docker://${ref.image}` : `${ref.transport}:${ref.image}`;
}
