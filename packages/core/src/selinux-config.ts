import { notFound, parseError } from "./errors.js";
import type { FileContextsSources } from "./selinux-contexts.js";

/** What `/etc/selinux/config` says (see selinux_config(5)). */
export interface SelinuxConfig {
  /** `SELINUX=`: `enforcing`, `permissive` or `disabled` (as written; `undefined` when absent). */
  mode?: string;
  /** `SELINUXTYPE=`: the policy name, the directory under `/etc/selinux/` (e.g. `targeted`). */
  policyType?: string;
}

/**
 * Parses `/etc/selinux/config` text: `KEY=value` lines, `#` comments and blank lines
 * skipped, surrounding whitespace and one pair of matching quotes around the value dropped;
 * the last assignment of a key wins. A `SELINUXTYPE` that is not a single path component
 * is a `PARSE` error (it names a directory).
 */
export function parseSelinuxConfig(text: string): SelinuxConfig {
  const out: SelinuxConfig = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0])
      value = value.slice(1, -1);
    if (key === "SELINUX") out.mode = value;
    else if (key === "SELINUXTYPE") {
      if (value === "" || value === "." || value === ".." || value.includes("/"))
        throw parseError(`invalid SELINUXTYPE ${JSON.stringify(value)} in selinux config`, {
          op: "core.parseSelinuxConfig",
          data: { policyType: value },
        });
      out.policyType = value;
    }
  }
  return out;
}

/** The paths (relative to the `etc` directory that holds `selinux/`) of a policy's file contexts. */
export interface SelinuxPolicyFiles {
  config: string;
  fileContexts: string;
  homedirs: string;
  local: string;
  subsDist: string;
  subs: string;
}

/**
 * Where a policy's file-context files are, relative to an `etc` directory: in an ostree
 * commit that is `usr/etc`, in a booted system `/etc`. E.g. for `targeted`:
 * `selinux/targeted/contexts/files/file_contexts` (+ `.homedirs`, `.local`, `.subs_dist`, `.subs`).
 */
export function selinuxPolicyFiles(policyType: string): SelinuxPolicyFiles {
  const fc = `selinux/${policyType}/contexts/files/file_contexts`;
  return {
    config: "selinux/config",
    fileContexts: fc,
    homedirs: `${fc}.homedirs`,
    local: `${fc}.local`,
    subsDist: `${fc}.subs_dist`,
    subs: `${fc}.subs`,
  };
}

/** Reads one file of a policy, relative to the `etc` directory; `null` when it does not exist. */
export type PolicyFileReader = (relativePath: string) => Promise<string | null>;

/** What {@link loadFileContextsSources} found. */
export interface LoadedPolicySources {
  /** `SELINUXTYPE` of the config. */
  policyType: string;
  /** `SELINUX` of the config (`enforcing`, `permissive`, `disabled`), if set. */
  mode?: string;
  sources: FileContextsSources;
}

/**
 * Gathers a policy's file-context texts through an injected reader, the way libostree's
 * `OstreeSePolicy` finds them in a root: `selinux/config` (relative to the `etc` directory
 * the reader serves — `usr/etc` of an ostree commit, `etc` of a plain root) names the policy;
 * then `selinux/<type>/contexts/files/file_contexts` (required once a config names a type)
 * and its optional `.homedirs`, `.local`, `.subs_dist`, `.subs`. Returns `null` when there is
 * no `selinux/config` or it names no `SELINUXTYPE` (nothing to label with, as libostree
 * treats it). A config naming a policy whose `file_contexts` is missing is a `NOT_FOUND` error.
 * Compile the result with {@link compileFileContexts}.
 */
export async function loadFileContextsSources(
  read: PolicyFileReader,
): Promise<LoadedPolicySources | null> {
  const configText = await read("selinux/config");
  if (configText === null) return null;
  const config = parseSelinuxConfig(configText);
  if (config.policyType === undefined) return null;
  const files = selinuxPolicyFiles(config.policyType);
  const fileContexts = await read(files.fileContexts);
  if (fileContexts === null)
    throw notFound(`SELinux policy ${config.policyType}: ${files.fileContexts} is missing`, {
      op: "core.loadFileContextsSources",
      data: { policyType: config.policyType, path: files.fileContexts },
    });
  const [homedirs, local, subsDist, subs] = await Promise.all([
    read(files.homedirs),
    read(files.local),
    read(files.subsDist),
    read(files.subs),
  ]);
  const sources: FileContextsSources = { fileContexts };
  if (homedirs !== null) sources.homedirs = homedirs;
  if (local !== null) sources.local = local;
  if (subsDist !== null) sources.subsDist = subsDist;
  if (subs !== null) sources.subs = subs;
  const out: LoadedPolicySources = { policyType: config.policyType, sources };
  if (config.mode !== undefined) out.mode = config.mode;
  return out;
}
