/**
 * The structure of the config, written once as data: the structural checker walks it (types,
 * unknown keys, required keys, sizes) and the JSON Schema export is generated from it.
 */
import { isImageModeError } from "@imagemode/core";
import { parseDataSize } from "../data-size.js";
import type { ValidationIssue } from "../model.js";

export type Spec =
  | { kind: "string"; description?: string; pattern?: string }
  | { kind: "integer"; min: number; max: number; description?: string }
  | { kind: "boolean"; description?: string }
  | { kind: "size"; description?: string }
  | { kind: "owner"; description?: string }
  | { kind: "any"; description?: string }
  | { kind: "array"; items: Spec; description?: string }
  | {
      kind: "object";
      fields: Record<string, Spec>;
      required?: readonly string[];
      description?: string;
      /** Runs on the checked object (keys already normalized) to merge aliases and the like. */
      post?: (
        obj: Record<string, unknown>,
        path: string,
        issues: ValidationIssue[],
      ) => Record<string, unknown> | undefined;
    };

/** Largest id accepted for uids and gids (4294967295 is `(uid_t)-1`). */
export const MAX_ID = 4294967294;

const str = (description?: string): Spec => ({
  kind: "string",
  ...(description ? { description } : {}),
});
const bool = (description?: string): Spec => ({
  kind: "boolean",
  ...(description ? { description } : {}),
});
const id = (description: string): Spec => ({ kind: "integer", min: 0, max: MAX_ID, description });
const any = (description: string): Spec => ({ kind: "any", description });
const arr = (items: Spec, description?: string): Spec => ({
  kind: "array",
  items,
  ...(description ? { description } : {}),
});
const obj = (
  fields: Record<string, Spec>,
  required: readonly string[] = [],
  description?: string,
): Spec => ({
  kind: "object",
  fields,
  required,
  ...(description ? { description } : {}),
});

const filesystemSpec: Spec = {
  kind: "object",
  description: "A minimum size for a mountpoint (`/`, `/boot`, or a directory under `/var`).",
  fields: {
    mountpoint: str("Absolute, canonical mountpoint."),
    minsize: {
      kind: "size",
      description: 'Minimum size: bytes, or a string with a unit (`"10 GiB"`).',
    },
    size: { kind: "size", description: "Deprecated alias of `minsize`." },
  },
  required: ["mountpoint"],
  post(o, path, issues) {
    const size = o.size as number | undefined;
    const minsize = o.minsize as number | undefined;
    if (size !== undefined && minsize !== undefined && size > 0 && minsize > 0) {
      issues.push({
        path: `${path}.size`,
        code: "SIZE_AND_MINSIZE",
        message: "size and minsize cannot both be set (size is an alias for minsize)",
      });
      return undefined;
    }
    const effective = minsize !== undefined && minsize > 0 ? minsize : (size ?? minsize ?? 0);
    if (effective <= 0) {
      issues.push({
        path: `${path}.minsize`,
        code: "MINSIZE_ZERO",
        message: `minsize must be greater than 0, got ${effective}`,
      });
      return undefined;
    }
    const { size: _drop, ...rest } = o;
    return { ...rest, minsize: effective };
  },
};

const fsTyped = {
  mountpoint: str("Mountpoint."),
  label: str("Filesystem label."),
  fs_type: str(
    "`ext4`, `xfs`, `vfat` (or `swap` for a logical volume/partition without mountpoint).",
  ),
};

const logicalVolumeSpec: Spec = {
  kind: "object",
  fields: {
    name: str("Logical volume name."),
    minsize: { kind: "size", description: "Minimum size." },
    ...fsTyped,
  },
  required: ["minsize"],
};

const partitionSpec: Spec = obj(
  {
    type: str("`plain` (default), `lvm` or `btrfs`."),
    minsize: { kind: "size", description: "Minimum size." },
    part_type: str("GPT partition type GUID or a 2-digit DOS type."),
    part_label: str("GPT partition label."),
    part_uuid: str("GPT partition UUID."),
    ...fsTyped,
    name: str("LVM volume group name."),
    logical_volumes: arr(logicalVolumeSpec, "LVM logical volumes."),
    subvolumes: arr(
      obj({ name: str("Subvolume name."), mountpoint: str("Mountpoint.") }, ["name"]),
      "btrfs subvolumes.",
    ),
  },
  [],
  "A partition.",
);

/** The config, as bootc-image-builder accepts it (all blueprint customizations are known keys). */
export const BLUEPRINT_SPEC: Spec = obj(
  {
    name: str("Name of the blueprint (metadata)."),
    description: str("Description (metadata)."),
    version: str("Version (metadata)."),
    packages: arr(
      obj({ name: str(), version: str() }, ["name"]),
      "Packages (not supported for bootc images).",
    ),
    modules: arr(
      obj({ name: str(), version: str() }, ["name"]),
      "Modules (not supported for bootc images).",
    ),
    enabled_modules: arr(
      obj({ name: str(), stream: str() }, ["name"]),
      "Module streams (not supported for bootc images).",
    ),
    groups: arr(obj({ name: str() }, ["name"]), "Package groups (not supported for bootc images)."),
    containers: arr(
      obj({ source: str(), name: str(), "tls-verify": bool(), "local-storage": bool() }, [
        "source",
      ]),
      "Containers to embed (not supported for bootc images).",
    ),
    distro: str("Distribution (not used for bootc images)."),
    architecture: str("Architecture (not used for bootc images)."),
    customizations: obj(
      {
        user: arr(
          obj(
            {
              name: str("User name."),
              description: str("GECOS field."),
              password: str("Plain text (hashed with SHA-512 crypt) or a `$6$`/`$5$`/`$2b$` hash."),
              key: str("SSH public key(s), one per line."),
              home: str("Home directory (default `/var/home/<name>`)."),
              shell: str("Login shell."),
              groups: arr(str(), "Supplementary groups; missing ones are created."),
              uid: id("User ID."),
              gid: id("Primary group ID."),
              expiredate: {
                kind: "integer",
                min: 0,
                max: 2147483647,
                description: "Account expiry, days since 1970-01-01.",
              },
              force_password_reset: bool("Force a password change at first login."),
            },
            ["name"],
          ),
          "Users to create or change.",
        ),
        sshkey: arr(
          obj({ user: str(), key: str() }, ["user", "key"]),
          "Legacy: SSH keys for users.",
        ),
        group: arr(
          obj({ name: str("Group name."), gid: id("Group ID.") }, ["name"]),
          "Groups to create.",
        ),
        kernel: obj({
          name: str("Kernel package (not supported for bootc images)."),
          append: str("Kernel arguments to add."),
        }),
        filesystem: arr(filesystemSpec, "Minimum sizes of mountpoints."),
        disk: obj(
          {
            type: str("`gpt` (default) or `dos`."),
            minsize: { kind: "size", description: "Minimum disk size." },
            start_offset: { kind: "size", description: "Offset of the first partition." },
            sector_size: {
              kind: "integer",
              min: 0,
              max: 65536,
              description: "Sector size (a power of 2).",
            },
            partitions: arr(partitionSpec, "Partitions."),
          },
          [],
          "Full partitioning; cannot be combined with `filesystem`.",
        ),
        directories: arr(
          obj(
            {
              path: str("Absolute path under /etc."),
              user: { kind: "owner", description: "Owner (name or uid; default root)." },
              group: { kind: "owner", description: "Group (name or gid; default root)." },
              mode: str("Octal mode (default 0755)."),
              ensure_parents: bool("Create missing parents."),
            },
            ["path"],
          ),
          "Directories to create.",
        ),
        files: arr(
          obj(
            {
              path: str("Absolute path under /etc, /root, /usr/local/bin or /usr/local/sbin."),
              user: { kind: "owner", description: "Owner (name or uid; default root)." },
              group: { kind: "owner", description: "Group (name or gid; default root)." },
              mode: str("Octal mode (default 0644)."),
              data: str("Contents."),
              uri: str("Source URI (not supported here)."),
            },
            ["path"],
          ),
          "Files to create.",
        ),
        sshd: obj({
          password_authentication: bool("PasswordAuthentication."),
          client_alive_interval: {
            kind: "integer",
            min: 0,
            max: 2147483647,
            description: "ClientAliveInterval (seconds).",
          },
          permit_root_login: str(
            "PermitRootLogin: yes, no, prohibit-password, forced-commands-only.",
          ),
          kbd_interactive_authentication: bool("KbdInteractiveAuthentication."),
        }),
        ignition: obj({
          embedded: obj({ config: str("Base64 Ignition config.") }),
          firstboot: obj({
            url: str("Provisioning URL."),
            empty: bool("Boot with an empty config."),
          }),
        }),
        fips: bool("FIPS mode (ISO types only)."),
        installer: any("Anaconda installer options (ISO types only)."),
        hostname: any("Not supported for bootc images."),
        timezone: any("Not supported for bootc images."),
        locale: any("Not supported for bootc images."),
        firewall: any("Not supported for bootc images."),
        services: any("Not supported for bootc images."),
        installation_device: any("Not supported for bootc images."),
        partitioning_mode: any("Not supported for bootc images."),
        fdo: any("Not supported for bootc images."),
        openscap: any("Not supported for bootc images."),
        repositories: any("Not supported for bootc images."),
        rpm: any("Not supported for bootc images."),
        rhsm: any("Not supported for bootc images."),
        cacerts: any("Not supported for bootc images."),
        "containers-storage": any("Not supported for bootc images."),
        firstboot: any("Not supported for bootc images."),
        dnf: any("Not supported for bootc images."),
        iso: any("Not supported for bootc images."),
        bootloader: any("Not supported for bootc images."),
      },
      [],
      "Customizations of the image.",
    ),
  },
  [],
  "A bootc-image-builder build config (blueprint).",
);

/** `a string`, `an integer`, … for messages. */
export function describeType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Date) return "a date-time";
  switch (typeof v) {
    case "string":
      return "a string";
    case "boolean":
      return "a boolean";
    case "bigint":
      return "an integer";
    case "number":
      return Number.isInteger(v) ? "an integer" : "a float";
    case "object":
      return "a table";
    default:
      return typeof v;
  }
}

export function joinPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return path === "" ? key : `${path}.${key}`;
}

function asInteger(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isInteger(v)) return v;
  if (
    typeof v === "bigint" &&
    v >= BigInt(Number.MIN_SAFE_INTEGER) &&
    v <= BigInt(Number.MAX_SAFE_INTEGER)
  )
    return Number(v);
  return undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * Checks `value` against `spec`, pushing every problem into `issues`. Returns the normalized
 * value (sizes in bytes, aliases merged), or `undefined` where the value was unusable.
 */
export function checkStructure(
  spec: Spec,
  value: unknown,
  path: string,
  issues: ValidationIssue[],
): unknown {
  const typeIssue = (expected: string) =>
    issues.push({
      path,
      code: "INVALID_TYPE",
      message: `expected ${expected}, got ${describeType(value)}`,
    });
  switch (spec.kind) {
    case "any":
      return value;
    case "string":
      if (typeof value !== "string") return void typeIssue("a string");
      return value;
    case "boolean":
      if (typeof value !== "boolean") return void typeIssue("a boolean");
      return value;
    case "integer": {
      const n = asInteger(value);
      if (n === undefined) return void typeIssue("an integer");
      if (n < spec.min || n > spec.max) {
        issues.push({
          path,
          code: "INVALID_VALUE",
          message: `${n} is out of range (${spec.min}..${spec.max})`,
        });
        return undefined;
      }
      return n;
    }
    case "size": {
      const n = asInteger(value);
      if (n !== undefined) {
        if (n < 0) {
          issues.push({
            path,
            code: "INVALID_SIZE",
            message: `the size string is not a valid positive float number: ${n}`,
          });
          return undefined;
        }
        return n;
      }
      if (typeof value !== "string") return void typeIssue("an integer or a string");
      try {
        return parseDataSize(value);
      } catch (e) {
        if (!isImageModeError(e)) throw e;
        issues.push({ path, code: "INVALID_SIZE", message: e.message });
        return undefined;
      }
    }
    case "owner": {
      const n = asInteger(value);
      if (n !== undefined) {
        if (n < 0 || n > MAX_ID) {
          issues.push({
            path,
            code: "INVALID_VALUE",
            message: `${n} is out of range (0..${MAX_ID})`,
          });
          return undefined;
        }
        return n;
      }
      if (typeof value !== "string") return void typeIssue("a name or a numeric id");
      return value;
    }
    case "array": {
      if (!Array.isArray(value)) return void typeIssue("an array");
      const out: unknown[] = [];
      let ok = true;
      value.forEach((item, i) => {
        const v = checkStructure(spec.items, item, joinPath(path, i), issues);
        if (v === undefined) ok = false;
        out.push(v);
      });
      return ok ? out : undefined;
    }
    case "object": {
      if (!isPlainObject(value))
        return void typeIssue(path === "" ? "a table (object)" : "a table");
      const out: Record<string, unknown> = {};
      let ok = true;
      for (const [k, v] of Object.entries(value)) {
        const field = Object.hasOwn(spec.fields, k) ? spec.fields[k] : undefined;
        if (!field) {
          issues.push({
            path: joinPath(path, k),
            code: "UNKNOWN_KEY",
            message: `unknown key ${JSON.stringify(k)}`,
          });
          ok = false;
          continue;
        }
        const checked = checkStructure(field, v, joinPath(path, k), issues);
        if (checked === undefined) ok = false;
        else out[k] = checked;
      }
      for (const r of spec.required ?? []) {
        if (!(r in value)) {
          issues.push({
            path: joinPath(path, r),
            code: "REQUIRED",
            message: `${JSON.stringify(r)} is required`,
          });
          ok = false;
        }
      }
      if (!ok) return undefined;
      return spec.post ? spec.post(out, path, issues) : out;
    }
  }
}
