/**
 * Opening what a transport reference names: `docker://` → a registry repository (through
 * registries.conf mirrors), `oci:` → an OCI layout, `oci-archive:` → an unpacked archive.
 */
import { ImageModeError, type Target } from "@imagemode/core";
import { openOciArchive } from "./archive.js";
import { OciLayout } from "./layout.js";
import { MirroredRepository } from "./mirrors.js";
import { formatReference, referenceTarget, type TransportReference } from "./reference.js";
import {
  EMPTY_REGISTRIES_CONF,
  isInsecureRegistry,
  pullSources,
  type RegistriesConf,
} from "./registries-conf.js";
import { type RegistryOptions, RegistryRepository } from "./registry.js";

/** Options of {@link openTransport}. */
export interface OpenTransportOptions {
  /** Registry options (HTTP client, credentials, TLS, insecure). */
  registry?: RegistryOptions;
  /** Mirrors and insecure flags. */
  registriesConf?: RegistriesConf;
  /** Create an OCI layout that does not exist yet (for destinations). */
  create?: boolean;
  /** Where `oci-archive:` files are unpacked (required for them). */
  tempDir?: string;
  /** fsync blobs written to layouts (default true). */
  fsync?: boolean;
}

/** An opened transport: the target, the reference to resolve or tag in it, and a closer. */
export interface OpenedTransport {
  target: Target;
  /** The tag or digest inside the target (`""` when an `oci:` reference names no tag). */
  reference: string;
  /** A display name. */
  name: string;
  close(): Promise<void>;
}

/** Opens the target a transport reference names. */
export async function openTransport(
  ref: TransportReference,
  options: OpenTransportOptions = {},
): Promise<OpenedTransport> {
  switch (ref.transport) {
    case "docker": {
      const conf = options.registriesConf ?? EMPTY_REGISTRIES_CONF;
      const img = ref.image;
      const sources = pullSources(conf, img.registry, img.repository, img.digest !== undefined).map(
        (s) =>
          new RegistryRepository(
            { registry: s.registry, repository: s.repository },
            {
              ...options.registry,
              ...(s.insecure || isInsecureRegistry(conf, s.registry) ? { insecure: true } : {}),
            },
          ),
      );
      const target =
        sources.length === 1 ? (sources[0] as RegistryRepository) : new MirroredRepository(sources);
      return {
        target,
        reference: referenceTarget(img),
        name: `docker://${formatReference(img)}`,
        close: () => target.close(),
      };
    }
    case "oci": {
      const layout = await OciLayout.open(ref.path, {
        create: options.create === true,
        ...(options.fsync === undefined ? {} : { fsync: options.fsync }),
      });
      return {
        target: layout,
        reference: ref.tag ?? "",
        name: `oci:${ref.path}${ref.tag ? `:${ref.tag}` : ""}`,
        close: async () => {},
      };
    }
    case "oci-archive": {
      if (options.create)
        throw new ImageModeError(
          "UNSUPPORTED",
          "writing oci-archive is not supported; copy to oci:DIR instead",
          { op: "oci.transport.open" },
        );
      if (!options.tempDir)
        throw new ImageModeError("INVALID_ARGUMENT", "reading an oci-archive needs a tempDir", {
          op: "oci.transport.open",
        });
      const a = await openOciArchive(ref.path, { tempDir: options.tempDir });
      return {
        target: a.layout,
        reference: ref.tag ?? "",
        name: `oci-archive:${ref.path}`,
        close: a.close,
      };
    }
  }
}
