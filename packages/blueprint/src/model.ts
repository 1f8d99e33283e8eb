/**
 * The blueprint model: one shape for a bootc-image-builder config, whether it came from
 * `config.toml` or `config.json`. Keys keep the spelling of the config file (snake_case), sizes
 * are normalized to bytes, and the TOML alias `size` of a filesystem becomes `minsize`.
 */

/** A package or module of the content section (not applied to bootc images). */
export interface PackageSpec {
  name: string;
  version?: string;
}

/** A modularity stream to enable (not applied to bootc images). */
export interface EnabledModuleSpec {
  name: string;
  stream?: string;
}

/** A package group (not applied to bootc images). */
export interface PackageGroupSpec {
  name: string;
}

/** A container to embed (not applied to bootc images). */
export interface ContainerSpec {
  source: string;
  name?: string;
  "tls-verify"?: boolean;
  "local-storage"?: boolean;
}

/** `customizations.user[]`. */
export interface UserCustomization {
  name: string;
  description?: string;
  /** Plain text, or a crypt hash starting with `$6$`, `$5$` or `$2b$`. */
  password?: string;
  /** SSH public key(s), one per line. */
  key?: string;
  home?: string;
  shell?: string;
  groups?: string[];
  uid?: number;
  gid?: number;
  /** Account expiry in days since 1970-01-01. */
  expiredate?: number;
  force_password_reset?: boolean;
}

/** Legacy `customizations.sshkey[]`: a key for a user; merged into the users. */
export interface SshKeyCustomization {
  user: string;
  key: string;
}

/** `customizations.group[]`. */
export interface GroupCustomization {
  name: string;
  gid?: number;
}

/** `customizations.kernel`. Only `append` is supported for bootc images. */
export interface KernelCustomization {
  name?: string;
  append?: string;
}

/** `customizations.filesystem[]`: a minimum size for a mountpoint, in bytes. */
export interface FilesystemCustomization {
  mountpoint: string;
  minsize: number;
}

/** A logical volume of an LVM partition. */
export interface LogicalVolumeCustomization {
  name?: string;
  minsize: number;
  mountpoint?: string;
  label?: string;
  fs_type?: string;
}

/** A btrfs subvolume. */
export interface BtrfsSubvolumeCustomization {
  name: string;
  mountpoint?: string;
}

/** A partition of `customizations.disk`. */
export interface PartitionCustomization {
  /** `plain` (default), `lvm` or `btrfs`. */
  type?: "plain" | "lvm" | "btrfs";
  minsize?: number;
  part_type?: string;
  part_label?: string;
  part_uuid?: string;
  mountpoint?: string;
  label?: string;
  fs_type?: string;
  /** LVM volume group name. */
  name?: string;
  logical_volumes?: LogicalVolumeCustomization[];
  subvolumes?: BtrfsSubvolumeCustomization[];
}

/** `customizations.disk`: the whole partition table. */
export interface DiskCustomization {
  /** `gpt` (default) or `dos`. */
  type?: "gpt" | "dos";
  minsize?: number;
  start_offset?: number;
  sector_size?: number;
  partitions?: PartitionCustomization[];
}

/** `customizations.directories[]`. */
export interface DirectoryCustomization {
  path: string;
  user?: string | number;
  group?: string | number;
  /** Octal string, e.g. `"0755"`. */
  mode?: string;
  ensure_parents?: boolean;
}

/** `customizations.files[]`. */
export interface FileCustomization {
  path: string;
  user?: string | number;
  group?: string | number;
  mode?: string;
  data?: string;
  uri?: string;
}

/** `customizations.sshd`. */
export interface SshdCustomization {
  password_authentication?: boolean;
  client_alive_interval?: number;
  permit_root_login?: string;
  kbd_interactive_authentication?: boolean;
}

/** `customizations.ignition`. */
export interface IgnitionCustomization {
  embedded?: { config?: string };
  firstboot?: { url?: string; empty?: boolean };
}

/**
 * `customizations`. The fields bootc images use are typed; every other blueprint customization
 * (`hostname`, `timezone`, `installer`, …) is kept as read, so that it can be reported as not
 * supported for the image type rather than as an unknown key.
 */
export interface Customizations {
  user?: UserCustomization[];
  sshkey?: SshKeyCustomization[];
  group?: GroupCustomization[];
  kernel?: KernelCustomization;
  filesystem?: FilesystemCustomization[];
  disk?: DiskCustomization;
  directories?: DirectoryCustomization[];
  files?: FileCustomization[];
  sshd?: SshdCustomization;
  ignition?: IgnitionCustomization;
  fips?: boolean;
  installer?: Record<string, unknown>;
  hostname?: unknown;
  timezone?: unknown;
  locale?: unknown;
  firewall?: unknown;
  services?: unknown;
  installation_device?: unknown;
  partitioning_mode?: unknown;
  fdo?: unknown;
  openscap?: unknown;
  repositories?: unknown;
  rpm?: unknown;
  rhsm?: unknown;
  cacerts?: unknown;
  "containers-storage"?: unknown;
  firstboot?: unknown;
  dnf?: unknown;
  iso?: unknown;
  bootloader?: unknown;
}

/** A whole blueprint (the top level of `config.toml` / `config.json`). */
export interface Blueprint {
  name?: string;
  description?: string;
  version?: string;
  packages?: PackageSpec[];
  modules?: PackageSpec[];
  enabled_modules?: EnabledModuleSpec[];
  groups?: PackageGroupSpec[];
  containers?: ContainerSpec[];
  customizations?: Customizations;
  distro?: string;
  architecture?: string;
}

/** One problem found in a config. */
export interface ValidationIssue {
  /** Where: `customizations.user[1].groups[0]`; the empty string is the whole document. */
  path: string;
  /** A stable code (see the docs page for the list). */
  code: IssueCode;
  /** A message a person can act on; bootc-image-builder's wording where it has one. */
  message: string;
}

/** The stable issue codes of {@link ValidationIssue}. */
export type IssueCode =
  | "UNKNOWN_KEY"
  | "INVALID_TYPE"
  | "REQUIRED"
  | "INVALID_VALUE"
  | "INVALID_NAME"
  | "INVALID_CHARACTER"
  | "DUPLICATE_USER"
  | "DUPLICATE_UID"
  | "DUPLICATE_GROUP"
  | "DUPLICATE_GID"
  | "UNSUPPORTED_CUSTOMIZATION"
  | "INVALID_SIZE"
  | "SIZE_AND_MINSIZE"
  | "MINSIZE_ZERO"
  | "MOUNTPOINT_NOT_ALLOWED"
  | "DUPLICATE_MOUNTPOINT"
  | "DISK_AND_FILESYSTEM"
  | "INVALID_SSH_KEY"
  | "INVALID_MODE"
  | "PATH_NOT_ALLOWED"
  | "DUPLICATE_PATH"
  | "CONFLICT";

/** The result of {@link validateBlueprint}. */
export type ValidationResult =
  | { ok: true; blueprint: Blueprint }
  | { ok: false; issues: ValidationIssue[] };
