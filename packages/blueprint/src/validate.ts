/**
 * Validation of a parsed config: structure (types, unknown keys, sizes) and the rules
 * bootc-image-builder applies, all problems reported at once.
 */
import { invalidArgument } from "@imagemode/core";
import { IMAGE_TYPES } from "./image-types.js";
import { BLUEPRINT_SPEC, checkStructure, joinPath } from "./internal/spec.js";
import type {
  Blueprint,
  Customizations,
  DirectoryCustomization,
  DiskCustomization,
  FileCustomization,
  ValidationIssue,
  ValidationResult,
} from "./model.js";
import { keyLines, publicKeyProblem } from "./ssh-key.js";

/** Options of {@link validateBlueprint}. */
export interface ValidateOptions {
  /** Check that only customizations this image type supports are used (`qcow2`, `raw`, `anaconda-iso`, …). */
  imageType?: string;
}

/** User and group names: `^[a-z_][a-z0-9_-]*\$?$`, at most 32 characters. */
export const ACCOUNT_NAME = /^[a-z_][a-z0-9_-]*\$?$/;

/** Mountpoints under `/var` that cannot be filesystems (symlinks or state owned by the OS). */
export const DENIED_VAR_MOUNTPOINTS: readonly string[] = [
  "/var/home",
  "/var/lock",
  "/var/mail",
  "/var/mnt",
  "/var/roothome",
  "/var/run",
  "/var/srv",
  "/var/usrlocal",
];

/** Where `customizations.directories` may create directories. */
const DIRECTORY_ROOTS = ["/etc"];
/** Where `customizations.files` may write, and the files it may not replace. */
const FILE_ROOTS = ["/etc", "/root", "/usr/local/bin", "/usr/local/sbin"];
const DENIED_FILES = ["/etc/fstab", "/etc/shadow", "/etc/passwd", "/etc/group"];

const PERMIT_ROOT_LOGIN = [
  "yes",
  "no",
  "prohibit-password",
  "without-password",
  "forced-commands-only",
];
const PLAIN_FS_TYPES = ["ext4", "xfs", "vfat", "swap"];

function isUnder(path: string, root: string): boolean {
  return path === root || path.startsWith(`${root}/`);
}

/** POSIX-style `path.Clean` for absolute paths. */
export function cleanPath(p: string): string {
  const parts: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") parts.pop();
    else parts.push(c);
  }
  return `/${parts.join("/")}`;
}

/** The problem with a path (`must be absolute`, `must be canonical`), bootc-image-builder's wording. */
function pathShapeProblem(p: string): string | undefined {
  if (p === "" || !p.startsWith("/")) return `path ${JSON.stringify(p)} must be absolute`;
  if (cleanPath(p) !== p) return `path ${JSON.stringify(p)} must be canonical`;
  return undefined;
}

/** Why a mountpoint is not allowed for a bootc disk image, or `undefined`. */
export function mountpointProblem(mountpoint: string): string | undefined {
  const shape = pathShapeProblem(mountpoint);
  if (shape) return shape;
  if (mountpoint === "/" || mountpoint === "/boot") return undefined;
  if (mountpoint === "/var") return `path "/var" is not allowed`;
  if (isUnder(mountpoint, "/var") && !DENIED_VAR_MOUNTPOINTS.some((d) => isUnder(mountpoint, d)))
    return undefined;
  return `path ${JSON.stringify(mountpoint)} is not allowed`;
}

function nameProblem(kind: "user" | "group", name: string): string | undefined {
  if (name.length > 32 || !ACCOUNT_NAME.test(name)) {
    return `invalid ${kind} name ${JSON.stringify(name)}: must match ^[a-z_][a-z0-9_-]*\\$?$ and be at most 32 characters`;
  }
  return undefined;
}

const MODE = /^0?[0-7]{3}$/;

class Checker {
  readonly issues: ValidationIssue[] = [];
  add(path: string, code: ValidationIssue["code"], message: string): void {
    this.issues.push({ path, code, message });
  }

  passwdField(path: string, value: string | undefined, what: string): void {
    if (value === undefined) return;
    if (value.includes(":") || value.includes("\n") || value.includes("\r")) {
      this.add(path, "INVALID_CHARACTER", `${what} must not contain ":" or a newline`);
    }
  }

  keys(path: string, key: string): void {
    for (const line of keyLines(key)) {
      const problem = publicKeyProblem(line);
      if (problem) {
        this.add(path, "INVALID_SSH_KEY", `not an SSH public key: ${problem}`);
        return;
      }
    }
  }

  users(c: Customizations): void {
    const names = new Map<string, number>();
    const uids = new Map<number, number>();
    (c.user ?? []).forEach((u, i) => {
      if (!u) return; // structurally broken (already reported)
      const p = joinPath("customizations.user", i);
      const np = nameProblem("user", u.name);
      if (np) this.add(`${p}.name`, "INVALID_NAME", np);
      if (names.has(u.name))
        this.add(`${p}.name`, "DUPLICATE_USER", `duplicate user name: ${u.name}`);
      names.set(u.name, i);
      if (u.uid !== undefined) {
        if (uids.has(u.uid)) this.add(`${p}.uid`, "DUPLICATE_UID", `duplicate user ID: ${u.uid}`);
        uids.set(u.uid, i);
      }
      this.passwdField(`${p}.description`, u.description, "description");
      this.passwdField(`${p}.password`, u.password, "password");
      this.passwdField(`${p}.shell`, u.shell, "shell");
      this.passwdField(`${p}.home`, u.home, "home");
      if (u.home !== undefined) {
        const home = u.home.replace(/\/+$/, "");
        if (!home.startsWith("/"))
          this.add(
            `${p}.home`,
            "INVALID_VALUE",
            `home ${JSON.stringify(u.home)} must be an absolute path`,
          );
      }
      if (u.shell !== undefined && !u.shell.startsWith("/")) {
        this.add(
          `${p}.shell`,
          "INVALID_VALUE",
          `shell ${JSON.stringify(u.shell)} must be an absolute path`,
        );
      }
      (u.groups ?? []).forEach((g, j) => {
        const gp = nameProblem("group", g);
        if (gp) this.add(`${p}.groups[${j}]`, "INVALID_NAME", gp);
      });
      if (u.key !== undefined) this.keys(`${p}.key`, u.key);
    });
    (c.sshkey ?? []).forEach((k, i) => {
      if (!k) return; // structurally broken (already reported)
      const p = joinPath("customizations.sshkey", i);
      const np = nameProblem("user", k.user);
      if (np) this.add(`${p}.user`, "INVALID_NAME", np);
      this.keys(`${p}.key`, k.key);
    });
  }

  groups(c: Customizations): void {
    const names = new Set<string>();
    const gids = new Set<number>();
    (c.group ?? []).forEach((g, i) => {
      if (!g) return; // structurally broken (already reported)
      const p = joinPath("customizations.group", i);
      const np = nameProblem("group", g.name);
      if (np) this.add(`${p}.name`, "INVALID_NAME", np);
      if (names.has(g.name))
        this.add(`${p}.name`, "DUPLICATE_GROUP", `duplicate group name: ${g.name}`);
      names.add(g.name);
      if (g.gid !== undefined) {
        if (gids.has(g.gid)) this.add(`${p}.gid`, "DUPLICATE_GID", `duplicate group ID: ${g.gid}`);
        gids.add(g.gid);
      }
    });
  }

  storage(c: Customizations): void {
    if (c.filesystem !== undefined && c.filesystem.length > 0 && c.disk !== undefined) {
      this.add(
        "customizations",
        "DISK_AND_FILESYSTEM",
        "cannot combine disk and filesystem customizations",
      );
    }
    const seen = new Set<string>();
    (c.filesystem ?? []).forEach((fs, i) => {
      if (!fs) return; // structurally broken (already reported)
      const p = `${joinPath("customizations.filesystem", i)}.mountpoint`;
      const problem = mountpointProblem(fs.mountpoint);
      if (problem) this.add(p, "MOUNTPOINT_NOT_ALLOWED", problem);
      if (seen.has(fs.mountpoint))
        this.add(
          p,
          "DUPLICATE_MOUNTPOINT",
          `duplicate mountpoint ${JSON.stringify(fs.mountpoint)}`,
        );
      seen.add(fs.mountpoint);
    });
    if (c.disk) this.disk(c.disk);
  }

  disk(d: DiskCustomization): void {
    const base = "customizations.disk";
    if (d.type !== undefined && d.type !== "gpt" && d.type !== "dos") {
      this.add(
        `${base}.type`,
        "INVALID_VALUE",
        `unknown partition table type: ${d.type} (valid: gpt, dos)`,
      );
    }
    if (d.type === "dos" && (d.partitions?.length ?? 0) > 4) {
      this.add(
        `${base}.partitions`,
        "INVALID_VALUE",
        `"dos" partition table type only supports up to 4 partitions: got ${d.partitions?.length}`,
      );
    }
    if (
      d.sector_size !== undefined &&
      d.sector_size !== 0 &&
      (d.sector_size & (d.sector_size - 1)) !== 0
    ) {
      this.add(
        `${base}.sector_size`,
        "INVALID_VALUE",
        `sector_size must be a power of 2, got ${d.sector_size}`,
      );
    }
    const mounts = new Set<string>();
    const mount = (path: string, m: string | undefined, fsType: string | undefined) => {
      if (m === undefined || m === "") {
        if (fsType !== "swap") this.add(`${path}.mountpoint`, "REQUIRED", "mountpoint is empty");
        return;
      }
      if (fsType === "swap") {
        this.add(
          `${path}.mountpoint`,
          "INVALID_VALUE",
          `mountpoint for swap must be empty (got ${JSON.stringify(m)})`,
        );
        return;
      }
      const problem = mountpointProblem(m);
      if (problem) this.add(`${path}.mountpoint`, "MOUNTPOINT_NOT_ALLOWED", problem);
      if (mounts.has(m))
        this.add(
          `${path}.mountpoint`,
          "DUPLICATE_MOUNTPOINT",
          `duplicate mountpoint ${JSON.stringify(m)} in partitioning customizations`,
        );
      mounts.add(m);
    };
    const fsType = (path: string, m: string | undefined, t: string | undefined) => {
      if (t === undefined) return;
      if (!PLAIN_FS_TYPES.includes(t)) {
        this.add(
          `${path}.fs_type`,
          "INVALID_VALUE",
          `unknown or invalid filesystem type (fs_type) for mountpoint ${JSON.stringify(m ?? "")}: ${t}`,
        );
      } else if (
        (m === "/boot" && t !== "ext4" && t !== "xfs") ||
        (m === "/boot/efi" && t !== "vfat")
      ) {
        this.add(
          `${path}.fs_type`,
          "INVALID_VALUE",
          `unsupported filesystem type for ${JSON.stringify(m)}: ${t}`,
        );
      }
    };
    let lvm = 0;
    let btrfs = 0;
    (d.partitions ?? []).forEach((part, i) => {
      const p = joinPath(`${base}.partitions`, i);
      const type = part.type ?? "plain";
      if (type === "plain") {
        mount(p, part.mountpoint, part.fs_type);
        fsType(p, part.mountpoint, part.fs_type);
        if (!part.minsize) this.add(`${p}.minsize`, "REQUIRED", "minsize is required");
      } else if (type === "lvm") {
        lvm++;
        if (part.mountpoint !== undefined)
          this.add(
            `${p}.mountpoint`,
            "INVALID_VALUE",
            "an LVM volume group has no mountpoint (its logical volumes do)",
          );
        const lvNames = new Set<string>();
        (part.logical_volumes ?? []).forEach((lv, j) => {
          const lp = joinPath(`${p}.logical_volumes`, j);
          if (lv.name !== undefined) {
            if (lvNames.has(lv.name))
              this.add(
                `${lp}.name`,
                "INVALID_VALUE",
                `duplicate LVM logical volume name ${JSON.stringify(lv.name)}`,
              );
            lvNames.add(lv.name);
          }
          mount(lp, lv.mountpoint, lv.fs_type);
          fsType(lp, lv.mountpoint, lv.fs_type);
          if (lv.mountpoint === "/boot")
            this.add(
              `${lp}.mountpoint`,
              "INVALID_VALUE",
              `invalid mountpoint "/boot" for logical volume`,
            );
        });
      } else if (type === "btrfs") {
        btrfs++;
        if (part.mountpoint !== undefined) {
          this.add(
            `${p}.mountpoint`,
            "INVALID_VALUE",
            `"mountpoint" is not supported for btrfs volumes (only subvolumes can have mountpoints)`,
          );
        }
        if ((part.subvolumes ?? []).length === 0)
          this.add(`${p}.subvolumes`, "REQUIRED", "btrfs volume requires subvolumes");
        const svNames = new Set<string>();
        (part.subvolumes ?? []).forEach((sv, j) => {
          const sp = joinPath(`${p}.subvolumes`, j);
          if (sv.name === "")
            this.add(
              `${sp}.name`,
              "REQUIRED",
              "btrfs subvolume with empty name in partitioning customizations",
            );
          if (svNames.has(sv.name))
            this.add(
              `${sp}.name`,
              "INVALID_VALUE",
              `duplicate btrfs subvolume name ${JSON.stringify(sv.name)} in partitioning customizations`,
            );
          svNames.add(sv.name);
          mount(sp, sv.mountpoint, undefined);
        });
      } else {
        this.add(`${p}.type`, "INVALID_VALUE", `unknown partition type: ${type}`);
      }
    });
    if (lvm > 0 && btrfs > 0)
      this.add(
        `${base}.partitions`,
        "INVALID_VALUE",
        "btrfs and lvm partitioning cannot be combined",
      );
    else if (btrfs > 1)
      this.add(
        `${base}.partitions`,
        "INVALID_VALUE",
        "multiple btrfs volumes are not yet supported",
      );
    else if (lvm > 1)
      this.add(
        `${base}.partitions`,
        "INVALID_VALUE",
        "multiple LVM volume groups are not yet supported",
      );
  }

  owner(path: string, kind: "user" | "group", v: string | number | undefined): void {
    if (typeof v === "string") {
      const np = nameProblem(kind, v);
      if (np) this.add(path, "INVALID_NAME", np);
    }
  }

  nodes(c: Customizations): void {
    const paths = new Map<string, "dir" | "file">();
    const node = (
      list: ReadonlyArray<DirectoryCustomization | FileCustomization>,
      key: "directories" | "files",
      roots: readonly string[],
      denied: readonly string[],
    ) => {
      list.forEach((n, i) => {
        if (!n) return; // structurally broken (already reported)
        const p = joinPath(`customizations.${key}`, i);
        const shape =
          n.path.endsWith("/") && n.path !== "/"
            ? "path must not end with a slash"
            : pathShapeProblem(n.path);
        if (shape) this.add(`${p}.path`, "PATH_NOT_ALLOWED", shape);
        else if (
          !roots.some((r) => isUnder(n.path, r)) ||
          denied.includes(n.path) ||
          roots.includes(n.path)
        ) {
          this.add(
            `${p}.path`,
            "PATH_NOT_ALLOWED",
            `path ${JSON.stringify(n.path)} is not allowed`,
          );
        }
        if (paths.has(n.path))
          this.add(
            `${p}.path`,
            "DUPLICATE_PATH",
            `duplicate files / directory customization paths: [${n.path}]`,
          );
        paths.set(n.path, key === "files" ? "file" : "dir");
        if (n.mode !== undefined && !MODE.test(n.mode))
          this.add(`${p}.mode`, "INVALID_MODE", `invalid mode ${n.mode}: must be an octal number`);
        this.owner(`${p}.user`, "user", n.user);
        this.owner(`${p}.group`, "group", n.group);
        if (key === "files") {
          const f = n as FileCustomization;
          if (f.data !== undefined && f.uri !== undefined && f.data !== "" && f.uri !== "") {
            this.add(
              `${p}.uri`,
              "CONFLICT",
              `cannot specify both data ${JSON.stringify(f.data.slice(0, 40))} and URI ${JSON.stringify(f.uri)}`,
            );
          }
        }
      });
    };
    node(c.directories ?? [], "directories", DIRECTORY_ROOTS, []);
    node(c.files ?? [], "files", FILE_ROOTS, DENIED_FILES);
    // A node's parent must not be a file.
    (c.directories ?? []).concat(c.files ?? []).forEach((n) => {
      if (!n) return; // structurally broken (already reported)
      for (
        let parent = n.path.slice(0, n.path.lastIndexOf("/"));
        parent.length > 1;
        parent = parent.slice(0, parent.lastIndexOf("/"))
      ) {
        if (paths.get(parent) === "file") {
          const idx = (c.files ?? []).findIndex((f) => f.path === parent);
          this.add(
            `${joinPath("customizations.files", idx)}.path`,
            "CONFLICT",
            `the following filesystem nodes are parents of another node and are not directories: [${n.path}]`,
          );
        }
      }
    });
  }

  misc(c: Customizations): void {
    if (c.kernel?.append !== undefined && /[\n\r]/.test(c.kernel.append)) {
      this.add(
        "customizations.kernel.append",
        "INVALID_CHARACTER",
        "kernel arguments must not contain a newline",
      );
    }
    if (
      c.sshd?.permit_root_login !== undefined &&
      !PERMIT_ROOT_LOGIN.includes(c.sshd.permit_root_login)
    ) {
      this.add(
        "customizations.sshd.permit_root_login",
        "INVALID_VALUE",
        `permit_root_login must be one of ${PERMIT_ROOT_LOGIN.join(", ")}, got ${JSON.stringify(c.sshd.permit_root_login)}`,
      );
    }
    const fb = c.ignition?.firstboot;
    if (fb?.empty && fb.url !== undefined && fb.url !== "") {
      this.add(
        "customizations.ignition.firstboot",
        "CONFLICT",
        "ignition.firstboot.url is mutually exclusive with ignition.firstboot.empty",
      );
    }
  }

  imageType(bp: Blueprint, imageType: string): void {
    const allowed = IMAGE_TYPES[imageType];
    if (!allowed) return;
    const message = `unsupported blueprint customizations found for image type ${JSON.stringify(imageType)}: (allowed: ${allowed.join(", ")})`;
    for (const key of ["packages", "modules", "enabled_modules", "groups", "containers"] as const) {
      if ((bp[key]?.length ?? 0) > 0) this.add(key, "UNSUPPORTED_CUSTOMIZATION", message);
    }
    const c = bp.customizations ?? {};
    const allowedTop = new Set(allowed.map((a) => a.split(".")[0]));
    if (allowed.includes("user")) allowedTop.add("sshkey");
    for (const [key, value] of Object.entries(c)) {
      if (isEmpty(value)) continue;
      if (!allowedTop.has(key)) {
        this.add(`customizations.${key}`, "UNSUPPORTED_CUSTOMIZATION", message);
      } else if (key === "kernel" && !allowed.includes("kernel")) {
        for (const [sub, v] of Object.entries(value as object)) {
          if (!isEmpty(v) && !allowed.includes(`kernel.${sub}`))
            this.add(`customizations.kernel.${sub}`, "UNSUPPORTED_CUSTOMIZATION", message);
        }
      }
    }
  }
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === "" || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  return false;
}

/**
 * Validates a parsed config (from `parseBlueprint`, or any JSON-like value) and returns the
 * normalized {@link Blueprint}, or every problem found, each with its path, code and message.
 *
 * @throws ImageModeError `INVALID_ARGUMENT` when `options.imageType` is not a known image type.
 */
export function validateBlueprint(value: unknown, options: ValidateOptions = {}): ValidationResult {
  if (options.imageType !== undefined && !Object.hasOwn(IMAGE_TYPES, options.imageType)) {
    throw invalidArgument(
      `unknown image type ${JSON.stringify(options.imageType)} (known: ${Object.keys(IMAGE_TYPES).join(", ")})`,
      {
        op: "blueprint.validate",
        data: { imageType: options.imageType },
      },
    );
  }
  const checker = new Checker();
  const structural = checkStructure(BLUEPRINT_SPEC, value, "", checker.issues);
  // Semantic rules run on whatever parts are structurally sound, so one run reports everything.
  const bp = (structural ?? salvage(value)) as Blueprint | undefined;
  if (bp) {
    const c = bp.customizations ?? {};
    checker.users(c);
    checker.groups(c);
    checker.storage(c);
    checker.nodes(c);
    checker.misc(c);
    if (options.imageType !== undefined) checker.imageType(bp, options.imageType);
  }
  if (checker.issues.length > 0 || structural === undefined) {
    return { ok: false, issues: dedupe(checker.issues) };
  }
  return { ok: true, blueprint: structural as Blueprint };
}

/**
 * When the structure has errors, re-check each customization on its own so the semantic rules
 * can still run on the sound ones.
 */
function salvage(value: unknown): Blueprint | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const root = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const scratch: ValidationIssue[] = [];
  const spec = BLUEPRINT_SPEC.kind === "object" ? BLUEPRINT_SPEC : undefined;
  if (!spec) return undefined;
  for (const [k, v] of Object.entries(root)) {
    const field = Object.hasOwn(spec.fields, k) ? spec.fields[k] : undefined;
    if (!field || k === "customizations") continue;
    const checked = checkStructure(field, v, k, scratch);
    if (checked !== undefined) out[k] = checked;
  }
  const c = root.customizations;
  const cspec = spec.fields.customizations;
  if (typeof c === "object" && c !== null && !Array.isArray(c) && cspec?.kind === "object") {
    const cout: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(c)) {
      const field = Object.hasOwn(cspec.fields, k) ? cspec.fields[k] : undefined;
      if (!field) continue;
      if (field.kind === "array" && Array.isArray(v)) {
        // Element by element: sound elements keep their index, broken ones become holes.
        cout[k] = v.map((item, i) =>
          checkStructure(field.items, item, `customizations.${k}[${i}]`, scratch),
        );
        continue;
      }
      const checked = checkStructure(field, v, `customizations.${k}`, scratch);
      if (checked !== undefined) cout[k] = checked;
    }
    out.customizations = cout;
  }
  return out as Blueprint;
}

function dedupe(issues: ValidationIssue[]): ValidationIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const k = `${i.path}\0${i.code}\0${i.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
