/**
 * Planning (pure): what a blueprint changes in an image, computed from the image's own account
 * files. The plan is plain data — it can be printed, stored, reviewed, then applied.
 */
import { randomBytes } from "node:crypto";
import type { Clock } from "@imagemode/core";
import { ImageModeError, invalidArgument, unsupported } from "@imagemode/core";
import { splitKernelArgs } from "./kernel-args.js";
import { idRanges, loginDefNumber, parseLoginDefs } from "./login-defs.js";
import type {
  Blueprint,
  DiskCustomization,
  IgnitionCustomization,
  UserCustomization,
} from "./model.js";
import {
  appendEntry,
  type ColonFile,
  entries,
  findEntry,
  parseColonFile,
  serializeColonFile,
  splitMembers,
  toGroupEntry,
  toPasswdEntry,
} from "./passwd.js";
import { hashPassword, isPasswordHash, makeSalt } from "./password.js";
import { keyLines } from "./ssh-key.js";

/** One account file of the image, with its metadata when known. */
export interface EtcFile {
  content: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

/**
 * The image's account files (from `/etc` of the container rootfs, or `/usr/etc` of an OSTree
 * commit). `libPasswd`/`libGroup` are `/usr/lib/passwd` and `/usr/lib/group` of images that
 * use nss-altfiles.
 */
export interface EtcFiles {
  passwd: string | EtcFile;
  group: string | EtcFile;
  shadow?: string | EtcFile;
  gshadow?: string | EtcFile;
  loginDefs?: string | EtcFile;
  libPasswd?: string | EtcFile;
  libGroup?: string | EtcFile;
  /** `/etc/default/useradd` (its `SHELL=` is the default shell of new users). */
  useraddDefaults?: string | EtcFile;
}

/** Options of {@link planCustomizations}. */
export interface PlanOptions {
  /** Where the account files live, relative to the image root: `etc` (default) or `usr/etc`. */
  etcDir?: string;
  /** Random bytes for password salts (default `crypto.randomBytes`). */
  random?: (size: number) => Uint8Array;
  /** Milliseconds since the epoch, for `shadow`'s last-change day (default `Date.now`). */
  clock?: Clock;
  /** Shell of new users without `shell` (default: `SHELL=` of the image's `/etc/default/useradd`, else `/bin/bash`). */
  defaultShell?: string;
}

/** A directory or file the plan creates or replaces. Paths are relative to the image root. */
export type PlanEdit =
  | {
      type: "dir";
      path: string;
      mode: number;
      uid: number;
      gid: number;
      /** Only create it when missing; never change an existing one. */
      createOnly: boolean;
      reason: string;
    }
  | {
      type: "file";
      path: string;
      mode: number;
      uid: number;
      gid: number;
      content: string;
      /** An existing file keeps its own mode and owner (the account databases). */
      keepMetadata: boolean;
      reason: string;
    };

/** A user after planning. */
export interface PlannedUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  gecos: string;
  /** Supplementary groups the plan adds the user to. */
  groups: string[];
  created: boolean;
  /** `hashed` (plain text hashed here), `hash` (a hash given), `locked` (new user, no password), `unchanged`. */
  password: "hashed" | "hash" | "locked" | "unchanged";
  /** The salt used when `password` is `hashed`. */
  salt?: string;
  /** Number of authorized SSH keys written. */
  keys: number;
}

/** A group after planning. */
export interface PlannedGroup {
  name: string;
  gid: number;
  created: boolean;
  /** Why it exists: `blueprint`, `user-private`, `supplementary`. */
  origin: "blueprint" | "user-private" | "supplementary" | "existing";
  addedMembers: string[];
}

/** What the disk layout must provide. */
export interface StoragePlan {
  /** `customizations.filesystem`, sizes in bytes. */
  filesystems: Array<{ mountpoint: string; minSize: number }>;
  /** Sum of the filesystem minimum sizes, rounded up to 512-byte sectors. */
  filesystemsMinSize: number;
  /** `customizations.disk`, sizes in bytes. */
  disk?: DiskCustomization;
}

/** The plan: plain, JSON-serializable data. */
export interface CustomizationPlan {
  etcDir: string;
  users: PlannedUser[];
  groups: PlannedGroup[];
  edits: PlanEdit[];
  /** `customizations.kernel.append`, split into arguments. */
  kernelArgs: string[];
  storage: StoragePlan;
  ignition?: IgnitionCustomization;
  /** Things the user should know (defaults taken, entries copied from nss-altfiles). */
  notes: string[];
}

const text = (f: string | EtcFile | undefined): string | undefined =>
  typeof f === "string" ? f : f?.content;
const meta = (
  f: string | EtcFile | undefined,
  mode: number,
): { mode: number; uid: number; gid: number } =>
  typeof f === "object"
    ? { mode: f.mode ?? mode, uid: f.uid ?? 0, gid: f.gid ?? 0 }
    : { mode, uid: 0, gid: 0 };

/** `useradd`'s choice: one above the highest id in range, else the lowest free one. */
function allocate(used: ReadonlySet<number>, min: number, max: number, what: string): number {
  let highest = min - 1;
  for (const id of used) if (id >= min && id <= max && id > highest) highest = id;
  if (highest + 1 <= max) return highest + 1;
  for (let id = min; id <= max; id++) if (!used.has(id)) return id;
  throw new ImageModeError("CONFLICT", `no free ${what} left in ${min}..${max}`, {
    op: "blueprint.plan",
  });
}

/** Where a home directory lives on disk in an image-mode system. */
export function homeOnDisk(home: string): string {
  if (home === "/root") return "var/roothome";
  if (home.startsWith("/home/")) return `var/home/${home.slice("/home/".length)}`;
  return home.replace(/^\/+/, "");
}

function parentsOf(path: string): string[] {
  const parts = path.split("/");
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join("/"));
  return out;
}

function mergedUsers(bp: Blueprint): UserCustomization[] {
  const c = bp.customizations ?? {};
  const users: UserCustomization[] = [];
  const byName = new Map<string, UserCustomization>();
  for (const u of c.user ?? []) {
    const copy = {
      ...u,
      ...(u.home !== undefined ? { home: u.home.replace(/\/+$/, "") || "/" } : {}),
    };
    users.push(copy);
    byName.set(u.name, copy);
  }
  const keyOnly: UserCustomization[] = [];
  for (const k of c.sshkey ?? []) {
    const existing = byName.get(k.user);
    if (existing) {
      if (existing.key === undefined) existing.key = k.key;
      else if (keyOnly.includes(existing))
        existing.key = `${existing.key.replace(/\n*$/, "")}\n${k.key}`;
    } else {
      const u: UserCustomization = { name: k.user, key: k.key };
      keyOnly.push(u);
      byName.set(k.user, u);
    }
  }
  return [...keyOnly, ...users];
}

/**
 * Computes the changes a (validated) blueprint makes to an image: accounts (ids allocated as
 * `useradd`/`groupadd` would, from the image's own files and `login.defs`), home directories,
 * authorized keys, password hashes, directories and files, the sshd drop-in, kernel arguments
 * and the storage sizes.
 *
 * @throws ImageModeError `CONFLICT` when the blueprint contradicts the image (a uid taken by
 *   another user, …); `INVALID_ARGUMENT` for an owner that does not exist; `UNSUPPORTED` for
 *   files given by `uri`.
 */
export function planCustomizations(
  blueprint: Blueprint,
  etcFiles: EtcFiles,
  options: PlanOptions = {},
): CustomizationPlan {
  const etcDir = (options.etcDir ?? "etc").replace(/^\/+|\/+$/g, "");
  const random = options.random ?? randomBytes;
  const clock = options.clock ?? Date.now;
  const defs = parseLoginDefs(text(etcFiles.loginDefs) ?? "");
  const ranges = idRanges(text(etcFiles.loginDefs) === undefined ? undefined : defs);
  const today = Math.floor(clock() / 86_400_000);
  const useraddShell = /^SHELL=(.+)$/m.exec(text(etcFiles.useraddDefaults) ?? "")?.[1]?.trim();
  const defaultShell = options.defaultShell ?? (useraddShell || "/bin/bash");
  const c = blueprint.customizations ?? {};
  const notes: string[] = [];

  const passwd = parseColonFile(text(etcFiles.passwd) ?? "");
  const group = parseColonFile(text(etcFiles.group) ?? "");
  const shadowText = text(etcFiles.shadow);
  const gshadowText = text(etcFiles.gshadow);
  const shadow = shadowText === undefined ? undefined : parseColonFile(shadowText);
  const gshadow = gshadowText === undefined ? undefined : parseColonFile(gshadowText);
  const libPasswd = parseColonFile(text(etcFiles.libPasswd) ?? "");
  const libGroup = parseColonFile(text(etcFiles.libGroup) ?? "");
  const changed = { passwd: false, group: false, shadow: false, gshadow: false };

  const usedUids = new Set<number>();
  const usedGids = new Set<number>();
  for (const f of [...entries(passwd), ...entries(libPasswd)]) {
    const e = toPasswdEntry(f);
    if (e) usedUids.add(e.uid);
  }
  for (const f of [...entries(group), ...entries(libGroup)]) {
    const e = toGroupEntry(f);
    if (e) usedGids.add(e.gid);
  }
  const lookupUser = (name: string) => findEntry(passwd, name) ?? findEntry(libPasswd, name);
  const lookupGroup = (name: string) => findEntry(group, name) ?? findEntry(libGroup, name);
  const groupByGid = (gid: number) =>
    [...entries(group), ...entries(libGroup)].find((f) => toGroupEntry(f)?.gid === gid) as
      | string[]
      | undefined;
  const userByUid = (uid: number) =>
    [...entries(passwd), ...entries(libPasswd)].find((f) => toPasswdEntry(f)?.uid === uid);

  const plannedGroups = new Map<string, PlannedGroup>();

  /** The /etc/group entry of a group, copied from /usr/lib/group when only there. */
  const etcGroupEntry = (name: string): string[] | undefined => {
    const own = findEntry(group, name);
    if (own) return own;
    const lib = findEntry(libGroup, name);
    if (!lib) return undefined;
    const copy = [...lib];
    appendEntry(group, copy);
    changed.group = true;
    notes.push(
      `group ${name} copied from /usr/lib/group to /${etcDir}/group to change its members`,
    );
    return copy;
  };

  const createGroup = (name: string, gid: number, origin: PlannedGroup["origin"]): PlannedGroup => {
    appendEntry(group, [name, "x", String(gid), ""]);
    changed.group = true;
    if (gshadow) {
      appendEntry(gshadow, [name, "!", "", ""]);
      changed.gshadow = true;
    }
    usedGids.add(gid);
    const g: PlannedGroup = { name, gid, created: true, origin, addedMembers: [] };
    plannedGroups.set(name, g);
    return g;
  };

  const addMember = (groupName: string, user: string) => {
    const fields = etcGroupEntry(groupName);
    if (!fields) return;
    const members = splitMembers(fields[3]);
    if (!members.includes(user)) {
      members.push(user);
      while (fields.length < 4) fields.push("");
      fields[3] = members.join(",");
      changed.group = true;
    }
    if (gshadow) {
      let gs = findEntry(gshadow, groupName);
      if (!gs) {
        gs = [groupName, "!", "", ""];
        appendEntry(gshadow, gs);
      }
      const gm = splitMembers(gs[3]);
      if (!gm.includes(user)) {
        gm.push(user);
        while (gs.length < 4) gs.push("");
        gs[3] = gm.join(",");
      }
      changed.gshadow = true;
    }
    const entry = toGroupEntry(fields);
    const planned = plannedGroups.get(groupName) ?? {
      name: groupName,
      gid: entry?.gid ?? -1,
      created: false,
      origin: "existing" as const,
      addedMembers: [],
    };
    if (!planned.addedMembers.includes(user)) planned.addedMembers.push(user);
    plannedGroups.set(groupName, planned);
  };

  // 1. Groups of the blueprint, before users (as osbuild does).
  for (const g of c.group ?? []) {
    const existing = lookupGroup(g.name);
    if (existing) {
      const e = toGroupEntry(existing);
      if (g.gid !== undefined && e && e.gid !== g.gid) {
        throw new ImageModeError(
          "CONFLICT",
          `group ${g.name} already exists in the image with GID ${e.gid}, not ${g.gid}`,
          {
            op: "blueprint.plan",
            data: { group: g.name, gid: g.gid, existingGid: e.gid },
          },
        );
      }
      notes.push(`group ${g.name} already exists in the image`);
      continue;
    }
    let gid = g.gid;
    if (gid !== undefined) {
      const other = groupByGid(gid);
      if (other) {
        throw new ImageModeError(
          "CONFLICT",
          `GID ${gid} of group ${g.name} is already used by group ${other[0]}`,
          {
            op: "blueprint.plan",
            data: { group: g.name, gid },
          },
        );
      }
    } else {
      gid = allocate(usedGids, ranges.gidMin, ranges.gidMax, "GID");
    }
    createGroup(g.name, gid, "blueprint");
  }

  // 2. Users.
  const users: PlannedUser[] = [];
  const edits: PlanEdit[] = [];
  const dirEdits = new Map<string, PlanEdit>();
  const addDir = (
    path: string,
    mode: number,
    uid: number,
    gid: number,
    createOnly: boolean,
    reason: string,
  ) => {
    const existing = dirEdits.get(path);
    if (existing && !(existing.type === "dir" && existing.createOnly && !createOnly)) return;
    const edit: PlanEdit = { type: "dir", path, mode, uid, gid, createOnly, reason };
    dirEdits.set(path, edit);
    if (existing) edits[edits.indexOf(existing)] = edit;
    else edits.push(edit);
  };
  const passMinDays = String(loginDefNumber(defs, "PASS_MIN_DAYS", 0));
  const passMaxDays = String(loginDefNumber(defs, "PASS_MAX_DAYS", 99999));
  const passWarnAge = String(loginDefNumber(defs, "PASS_WARN_AGE", 7));

  for (const u of mergedUsers(blueprint)) {
    let fields = findEntry(passwd, u.name);
    const inLib = !fields && findEntry(libPasswd, u.name);
    const created = !fields && !inLib;
    let password: PlannedUser["password"] = "unchanged";
    let salt: string | undefined;
    let hash: string | undefined;
    if (u.password !== undefined && u.password !== "") {
      if (isPasswordHash(u.password)) {
        password = "hash";
        hash = u.password;
      } else {
        password = "hashed";
        salt = makeSalt(random);
        hash = hashPassword(u.password, salt);
      }
    } else if (created) {
      password = "locked";
      hash = "!";
    }

    if (inLib) {
      fields = [...inLib];
      appendEntry(passwd, fields);
      notes.push(`user ${u.name} copied from /usr/lib/passwd to /${etcDir}/passwd to change it`);
    }
    if (created) {
      let uid = u.uid;
      if (uid !== undefined) {
        const other = userByUid(uid);
        if (other) {
          throw new ImageModeError(
            "CONFLICT",
            `UID ${uid} of user ${u.name} is already used by user ${other[0]}`,
            {
              op: "blueprint.plan",
              data: { user: u.name, uid },
            },
          );
        }
      } else {
        uid = allocate(usedUids, ranges.uidMin, ranges.uidMax, "UID");
      }
      usedUids.add(uid);
      let gid: number;
      const sameName = lookupGroup(u.name);
      if (u.gid !== undefined) {
        gid = u.gid;
        if (!groupByGid(gid)) {
          if (sameName) {
            throw new ImageModeError(
              "CONFLICT",
              `group ${u.name} exists with another GID than ${gid}`,
              {
                op: "blueprint.plan",
                data: { user: u.name, gid },
              },
            );
          }
          createGroup(u.name, gid, "user-private");
        }
      } else if (sameName) {
        gid = toGroupEntry(sameName)?.gid ?? 0;
        notes.push(
          `user ${u.name}: the existing group ${u.name} (GID ${gid}) is the primary group`,
        );
      } else if (ranges.userGroups) {
        gid =
          !usedGids.has(uid) && uid >= ranges.gidMin && uid <= ranges.gidMax
            ? uid
            : allocate(usedGids, ranges.gidMin, ranges.gidMax, "GID");
        createGroup(u.name, gid, "user-private");
      } else {
        gid = loginDefNumber(defs, "USERS_GID", 100);
      }
      const home = u.home ?? (u.name === "root" ? "/var/roothome" : `/var/home/${u.name}`);
      fields = [
        u.name,
        "x",
        String(uid),
        String(gid),
        u.description ?? "",
        home,
        u.shell ?? defaultShell,
      ];
      appendEntry(passwd, fields);
      changed.passwd = true;
      if (shadow) {
        appendEntry(shadow, [
          u.name,
          hash ?? "!",
          u.force_password_reset ? "0" : String(today),
          passMinDays,
          passMaxDays,
          passWarnAge,
          "",
          u.expiredate === undefined ? "" : String(u.expiredate),
          "",
        ]);
        changed.shadow = true;
      } else if (hash !== undefined && hash !== "!") {
        fields[1] = hash;
      }
    } else if (fields) {
      if (u.uid !== undefined && fields[2] !== String(u.uid)) {
        throw new ImageModeError(
          "CONFLICT",
          `user ${u.name} exists in the image with UID ${fields[2]}, not ${u.uid}`,
          {
            op: "blueprint.plan",
            data: { user: u.name, uid: u.uid },
          },
        );
      }
      if (u.description !== undefined) fields[4] = u.description;
      if (u.home !== undefined) fields[5] = u.home;
      if (u.shell !== undefined) fields[6] = u.shell;
      if (u.gid !== undefined) fields[3] = String(u.gid);
      changed.passwd ||=
        Boolean(inLib) ||
        u.description !== undefined ||
        u.home !== undefined ||
        u.shell !== undefined ||
        u.gid !== undefined;
      if (hash !== undefined || u.expiredate !== undefined || u.force_password_reset) {
        if (shadow) {
          let s = findEntry(shadow, u.name);
          if (!s) {
            s = [
              u.name,
              fields[1] === "x" ? "!" : (fields[1] ?? "!"),
              String(today),
              passMinDays,
              passMaxDays,
              passWarnAge,
              "",
              "",
              "",
            ];
            appendEntry(shadow, s);
            if (fields[1] !== "x") {
              fields[1] = "x";
              changed.passwd = true;
            }
          }
          while (s.length < 9) s.push("");
          if (hash !== undefined) {
            s[1] = hash;
            s[2] = String(today);
          }
          if (u.force_password_reset) s[2] = "0";
          if (u.expiredate !== undefined) s[7] = String(u.expiredate);
          changed.shadow = true;
        } else if (hash !== undefined) {
          fields[1] = hash;
          changed.passwd = true;
        }
      }
    }
    const entry = toPasswdEntry(fields ?? []);
    if (!entry) {
      throw new ImageModeError("INVALID_STATE", `the passwd entry of ${u.name} is malformed`, {
        op: "blueprint.plan",
        data: { user: u.name },
      });
    }
    const supplementary: string[] = [];
    for (const g of u.groups ?? []) {
      if (!lookupGroup(g))
        createGroup(g, allocate(usedGids, ranges.gidMin, ranges.gidMax, "GID"), "supplementary");
      addMember(g, u.name);
      supplementary.push(g);
    }
    const keys = u.key === undefined ? [] : keyLines(u.key);
    const homeDir = homeOnDisk(entry.home);
    if (created && homeDir !== "") {
      for (const p of parentsOf(homeDir))
        addDir(p, 0o755, 0, 0, true, "parent of a home directory");
      addDir(homeDir, 0o700, entry.uid, entry.gid, false, `home of ${u.name}`);
    }
    if (keys.length > 0 && homeDir !== "") {
      if (!created)
        for (const p of [...parentsOf(homeDir), homeDir])
          addDir(
            p,
            p === homeDir ? 0o700 : 0o755,
            p === homeDir ? entry.uid : 0,
            p === homeDir ? entry.gid : 0,
            true,
            "home directory",
          );
      addDir(`${homeDir}/.ssh`, 0o700, entry.uid, entry.gid, false, `SSH directory of ${u.name}`);
      edits.push({
        type: "file",
        path: `${homeDir}/.ssh/authorized_keys`,
        mode: 0o600,
        uid: entry.uid,
        gid: entry.gid,
        content: `${keys.join("\n")}\n`,
        keepMetadata: false,
        reason: `SSH keys of ${u.name}`,
      });
    }
    users.push({
      name: u.name,
      uid: entry.uid,
      gid: entry.gid,
      home: entry.home,
      shell: entry.shell,
      gecos: entry.gecos,
      groups: supplementary,
      created,
      password,
      ...(salt === undefined ? {} : { salt }),
      keys: keys.length,
    });
  }

  // 3. The account databases (before anything that names their users, so owners resolve).
  const accountEdits: PlanEdit[] = [];
  const accountFile = (
    name: string,
    file: ColonFile | undefined,
    f: string | EtcFile | undefined,
    mode: number,
    dirty: boolean,
  ) => {
    if (!file || !dirty) return;
    const m = meta(f, mode);
    accountEdits.push({
      type: "file",
      path: `${etcDir}/${name}`,
      ...m,
      content: serializeColonFile(file),
      keepMetadata: true,
      reason: "account database",
    });
  };
  accountFile("passwd", passwd, etcFiles.passwd, 0o644, changed.passwd);
  accountFile("group", group, etcFiles.group, 0o644, changed.group);
  accountFile("shadow", shadow, etcFiles.shadow, 0o000, changed.shadow);
  accountFile("gshadow", gshadow, etcFiles.gshadow, 0o000, changed.gshadow);

  // 4. Directories and files.
  const uidOf = (owner: string | number | undefined, where: string): number => {
    if (owner === undefined) return 0;
    if (typeof owner === "number") return owner;
    const e = toPasswdEntry(lookupUser(owner) ?? []);
    if (!e)
      throw invalidArgument(
        `user ${JSON.stringify(owner)} of ${where} does not exist in the image`,
        { op: "blueprint.plan", data: { user: owner } },
      );
    return e.uid;
  };
  const gidOf = (owner: string | number | undefined, where: string): number => {
    if (owner === undefined) return 0;
    if (typeof owner === "number") return owner;
    const e = toGroupEntry(lookupGroup(owner) ?? []);
    if (!e)
      throw invalidArgument(
        `group ${JSON.stringify(owner)} of ${where} does not exist in the image`,
        { op: "blueprint.plan", data: { group: owner } },
      );
    return e.gid;
  };
  // Where a path of the booted system lives in the image tree: /etc in etcDir, and the bootc
  // symlinks /root → var/roothome, /usr/local → var/usrlocal resolved (never written through).
  const onDisk = (p: string) => {
    const rel = p.replace(/^\/+/, "");
    const under = (prefix: string) => rel === prefix || rel.startsWith(`${prefix}/`);
    if (under("etc")) return `${etcDir}${rel.slice(3)}`;
    if (under("root")) return `var/roothome${rel.slice(4)}`;
    if (under("usr/local")) return `var/usrlocal${rel.slice(9)}`;
    return rel;
  };
  (c.directories ?? []).forEach((d, i) => {
    const where = `customizations.directories[${i}]`;
    const path = onDisk(d.path);
    if (d.ensure_parents)
      for (const p of parentsOf(path)) addDir(p, 0o755, 0, 0, true, `parent of ${d.path}`);
    const explicit = d.mode !== undefined || d.user !== undefined || d.group !== undefined;
    addDir(
      path,
      d.mode === undefined ? 0o755 : Number.parseInt(d.mode, 8),
      uidOf(d.user, where),
      gidOf(d.group, where),
      !explicit,
      `customizations.directories`,
    );
  });
  (c.files ?? []).forEach((f, i) => {
    const where = `customizations.files[${i}]`;
    if (f.uri !== undefined && f.uri !== "") {
      throw unsupported(`${where}: files given by uri are not supported here; use data`, {
        op: "blueprint.plan",
        data: { uri: f.uri },
      });
    }
    edits.push({
      type: "file",
      path: onDisk(f.path),
      mode: f.mode === undefined ? 0o644 : Number.parseInt(f.mode, 8),
      uid: uidOf(f.user, where),
      gid: gidOf(f.group, where),
      content: f.data ?? "",
      keepMetadata: false,
      reason: "customizations.files",
    });
  });

  // 5. sshd drop-in.
  if (c.sshd && Object.keys(c.sshd).length > 0) {
    const lines: string[] = ["# Written by imagemode from the blueprint's customizations.sshd"];
    const yn = (b: boolean) => (b ? "yes" : "no");
    if (c.sshd.password_authentication !== undefined)
      lines.push(`PasswordAuthentication ${yn(c.sshd.password_authentication)}`);
    if (c.sshd.kbd_interactive_authentication !== undefined)
      lines.push(`KbdInteractiveAuthentication ${yn(c.sshd.kbd_interactive_authentication)}`);
    if (c.sshd.client_alive_interval !== undefined)
      lines.push(`ClientAliveInterval ${c.sshd.client_alive_interval}`);
    if (c.sshd.permit_root_login !== undefined)
      lines.push(`PermitRootLogin ${c.sshd.permit_root_login}`);
    for (const p of [`${etcDir}/ssh`, `${etcDir}/ssh/sshd_config.d`])
      addDir(p, 0o755, 0, 0, true, "sshd configuration directory");
    edits.push({
      type: "file",
      path: `${etcDir}/ssh/sshd_config.d/50-imagemode-blueprint.conf`,
      mode: 0o600,
      uid: 0,
      gid: 0,
      content: `${lines.join("\n")}\n`,
      keepMetadata: false,
      reason: "customizations.sshd",
    });
  }

  // 6. Storage and kernel arguments.
  const filesystems = (c.filesystem ?? []).map((f) => ({
    mountpoint: f.mountpoint,
    minSize: f.minsize,
  }));
  const sum = filesystems.reduce((a, f) => a + f.minSize, 0);
  const storage: StoragePlan = {
    filesystems,
    filesystemsMinSize: Math.ceil(sum / 512) * 512,
    ...(c.disk ? { disk: c.disk } : {}),
  };

  return {
    etcDir,
    users,
    groups: [...plannedGroups.values()],
    edits: [...accountEdits, ...sortEdits(edits)],
    kernelArgs: splitKernelArgs(c.kernel?.append ?? ""),
    storage,
    ...(c.ignition ? { ignition: c.ignition } : {}),
    notes,
  };
}

/** Parents before children, otherwise in plan order. */
function sortEdits(edits: PlanEdit[]): PlanEdit[] {
  return edits
    .map((e, i) => ({ e, i, depth: e.path.split("/").length }))
    .sort((a, b) => a.depth - b.depth || a.i - b.i)
    .map((x) => x.e);
}
