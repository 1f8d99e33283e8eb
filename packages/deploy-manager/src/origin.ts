import { invalidArgument } from "@imagemode/core";
import {
  formatOstreeImageReference,
  type ImageReference,
  parseOstreeImageReference,
} from "./image-reference.js";
import {
  getKey,
  type KeyFile,
  parseKeyFile,
  removeKey,
  serializeKeyFile,
  setKey,
} from "./keyfile.js";

/** What a deployment's `.origin` file says. */
export interface Origin {
  /** `[origin] refspec=` — a plain OSTree ref (`testos/stable`, `remote:ref`). */
  refspec?: string;
  /** `[origin] container-image-reference=` — what bootc tracks. */
  image?: ImageReference;
  /** `[libostree-transient] pinned=true`. */
  pinned: boolean;
  /** The whole file, so unknown keys survive a rewrite. */
  keyFile: KeyFile;
}

/** Parses an origin file. */
export function parseOrigin(text: string): Origin {
  const keyFile = parseKeyFile(text);
  const refspec = getKey(keyFile, "origin", "refspec");
  const cir = getKey(keyFile, "origin", "container-image-reference");
  return {
    ...(refspec ? { refspec } : {}),
    ...(cir ? { image: parseOstreeImageReference(cir) } : {}),
    pinned: getKey(keyFile, "libostree-transient", "pinned") === "true",
    keyFile,
  };
}

/** Serializes an origin, byte-identical to what ostree/bootc write for the same content. */
export function serializeOrigin(origin: Origin): string {
  return serializeKeyFile(originKeyFile(origin));
}

function originKeyFile(o: Origin): KeyFile {
  let kf = o.keyFile;
  kf = o.refspec ? setKey(kf, "origin", "refspec", o.refspec) : removeKey(kf, "origin", "refspec");
  kf = o.image
    ? setKey(kf, "origin", "container-image-reference", formatOstreeImageReference(o.image))
    : removeKey(kf, "origin", "container-image-reference");
  kf = o.pinned
    ? setKey(kf, "libostree-transient", "pinned", "true")
    : removeKey(kf, "libostree-transient", "pinned");
  return kf;
}

/** A new origin tracking a container image (bootc) or an OSTree ref. */
export function newOrigin(source: { image: ImageReference } | { refspec: string }): Origin {
  if ("image" in source) return { image: source.image, pinned: false, keyFile: { groups: [] } };
  if (!source.refspec) throw invalidArgument("empty refspec");
  return { refspec: source.refspec, pinned: false, keyFile: { groups: [] } };
}
