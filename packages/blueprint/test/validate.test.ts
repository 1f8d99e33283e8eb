import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isImageModeError } from "@imagemode/core";
import { describe, expect, it } from "vitest";
import {
  type ConfigFormat,
  formatForFile,
  parseBlueprint,
  parseConfigFiles,
  parseDataSize,
  type ValidationIssue,
  validateBlueprint,
} from "../src/index.js";

const FIXTURES = join(import.meta.dirname, "fixtures");
const fixture = (name: string) => readFileSync(join(FIXTURES, name), "utf8");
const load = (name: string) => parseBlueprint(fixture(name), formatForFile(name), { file: name });
const UNSUPPORTED_QCOW2 =
  'unsupported blueprint customizations found for image type "qcow2": (allowed: user, group, kernel.append, filesystem, disk, directories, files, sshd, ignition)';

function issuesOf(value: unknown, imageType?: string): ValidationIssue[] {
  const r = validateBlueprint(value, imageType === undefined ? {} : { imageType });
  return r.ok ? [] : r.issues;
}

function modelOf(value: unknown, imageType?: string) {
  const r = validateBlueprint(value, imageType === undefined ? {} : { imageType });
  if (!r.ok) throw new Error(`expected valid, got ${JSON.stringify(r.issues)}`);
  return r.blueprint;
}

describe("documentation examples", () => {
  it.each([
    ["bib-filesystem.toml", "bib-filesystem.json", "qcow2"],
    ["bib-installer-modules.toml", "bib-installer-modules.json", "anaconda-iso"],
  ])("%s and %s parse to the same model", (toml, json, type) => {
    const a = modelOf(load(toml), type);
    const b = modelOf(load(json), type);
    expect(a).toEqual(b);
  });

  it("images-disk-var.toml and .json parse to the same value and get the same verdict", () => {
    expect(load("images-disk-var.toml")).toEqual(load("images-disk-var.json"));
    expect(validateBlueprint(load("images-disk-var.toml"))).toEqual(
      validateBlueprint(load("images-disk-var.json")),
    );
  });

  it("normalizes sizes of the filesystem example to bytes", () => {
    expect(modelOf(load("bib-filesystem.toml"), "qcow2").customizations?.filesystem).toEqual([
      { mountpoint: "/", minsize: 10 * 1024 ** 3 },
      { mountpoint: "/var/data", minsize: 20 * 1024 ** 3 },
    ]);
  });

  it("unwraps the legacy {blueprint: …} JSON form", () => {
    const toml = '[[customizations.user]]\nname = "foo"\npassword = "bar"\ngroups = ["wheel"]\n';
    expect(modelOf(load("bib-legacy.json"), "qcow2")).toEqual(
      modelOf(parseBlueprint(toml, "toml"), "qcow2"),
    );
  });

  it("accepts the user, kernel, directory, file and ignition examples for qcow2", () => {
    for (const f of [
      "bib-user.toml",
      "bib-user.json",
      "bib-kernel.json",
      "osbuild-directory.toml",
      "osbuild-file.toml",
      "osbuild-ignition.toml",
    ]) {
      expect(issuesOf(load(f), "qcow2"), f).toEqual([]);
    }
    expect(modelOf(load("bib-kernel.json")).customizations?.kernel).toEqual({
      append: "mitigations=auto,nosmt",
    });
  });

  it("reports what bootc-image-builder rejects in the multi-customization blueprint, all at once", () => {
    const issues = issuesOf(load("osbuild-multiple.toml"), "qcow2");
    expect(issues).toEqual(
      expect.arrayContaining([
        { path: "packages", code: "UNSUPPORTED_CUSTOMIZATION", message: UNSUPPORTED_QCOW2 },
        {
          path: "customizations.hostname",
          code: "UNSUPPORTED_CUSTOMIZATION",
          message: UNSUPPORTED_QCOW2,
        },
        {
          path: "customizations.openscap",
          code: "UNSUPPORTED_CUSTOMIZATION",
          message: UNSUPPORTED_QCOW2,
        },
        expect.objectContaining({ path: "customizations.sshkey[0].key", code: "INVALID_SSH_KEY" }),
        expect.objectContaining({ path: "customizations.user[3].key", code: "INVALID_SSH_KEY" }),
      ]),
    );
    expect(issues).toHaveLength(5);
  });

  it("rejects mountpoints outside the bootc policy in the partitioning examples", () => {
    expect(issuesOf(load("images-disk-var.toml"), "qcow2")).toEqual([
      {
        path: "customizations.disk.partitions[0].mountpoint",
        code: "MOUNTPOINT_NOT_ALLOWED",
        message: 'path "/var" is not allowed',
      },
    ]);
    expect(issuesOf(load("osbuild-btrfs.toml"), "qcow2")).toEqual([
      {
        path: "customizations.disk.partitions[0].subvolumes[1].mountpoint",
        code: "MOUNTPOINT_NOT_ALLOWED",
        message: 'path "/data" is not allowed',
      },
    ]);
  });

  it("allows the installer only for ISO image types", () => {
    expect(issuesOf(load("bib-installer-modules.toml"), "qcow2")).toEqual([
      {
        path: "customizations.installer",
        code: "UNSUPPORTED_CUSTOMIZATION",
        message: UNSUPPORTED_QCOW2,
      },
    ]);
    expect(issuesOf(load("bib-installer-modules.toml"), "anaconda-iso")).toEqual([]);
  });
});

describe("parsing", () => {
  it("reports TOML syntax errors with file, line and column", () => {
    try {
      parseBlueprint('name = "x"\n[customizations\nhostname = 1\n', "toml", {
        file: "config.toml",
      });
      expect.unreachable();
    } catch (e) {
      expect(isImageModeError(e, "PARSE")).toBe(true);
      const err = e as { message: string; data: Record<string, unknown> };
      expect(err.data).toMatchObject({ file: "config.toml", line: 2 });
      expect(err.message).toMatch(/^config\.toml:2:\d+: /);
    }
  });

  it("reports JSON syntax errors with file, line and column", () => {
    try {
      parseBlueprint('{\n  "name": "x",\n}\n', "json", { file: "config.json" });
      expect.unreachable();
    } catch (e) {
      expect(isImageModeError(e, "PARSE")).toBe(true);
      expect((e as { data: unknown }).data).toEqual({
        file: "config.json",
        line: 3,
        column: 1,
        format: "json",
      });
    }
    expect(() => parseBlueprint('{"a":', "json")).toThrow(/config\.json:1:6: /);
  });

  it("refuses two configs with bootc-image-builder's message", () => {
    expect(() =>
      parseConfigFiles([
        { path: "/x/config.toml", text: "" },
        { path: "/x/config.json", text: "{}" },
      ]),
    ).toThrow('found "config.json" and also "config.toml", only a single one is supported');
    expect(parseConfigFiles([{ path: "a/config.toml", text: 'name = "n"' }])).toEqual({
      name: "n",
    });
    expect(parseConfigFiles([])).toBeUndefined();
  });

  it("refuses unknown file extensions", () => {
    expect(() => formatForFile("config.yaml")).toThrow(/unsupported file extension/);
  });
});

describe("parseDataSize", () => {
  // Expected values: osbuild/images pkg/datasizes behaviour (units, rounding, whitespace).
  it.each<[string | number, number]>([
    ["123", 123],
    ["123 kB", 123000],
    ["123 KiB", 123 * 1024],
    ["123 MB", 123e6],
    ["123 MiB", 123 * 1024 ** 2],
    ["123 GB", 123e9],
    ["123 GiB", 123 * 1024 ** 3],
    ["123 TB", 123e12],
    ["123 TiB", 123 * 1024 ** 4],
    ["123kB", 123000],
    [" 123  ", 123],
    ["  123KiB  ", 123 * 1024],
    ["123.45", 123],
    ["1.5", 2],
    ["1.5 GiB", 1610612736],
    ["2.5GB", 2500000000],
    ["0.5 MiB", 512 * 1024],
    ["0.3 GiB", 322122547],
    ["10 GiB", 10737418240],
    [2147483648, 2147483648],
  ])("%j → %d bytes", (input, bytes) => {
    expect(parseDataSize(input)).toBe(bytes);
  });

  it.each([
    ["123 KB", "unknown data size units in string: 123 KB"],
    ["123 mb", "unknown data size units in string: 123 mb"],
    ["123 PiB", "unknown data size units in string: 123 PiB"],
    ["-1 MiB", "the size string is not a valid positive float number: -1 MiB"],
    ["GiB", "the size string is not a valid positive float number: GiB"],
  ])("%j is refused: %s", (input, message) => {
    try {
      parseDataSize(input);
      expect.unreachable();
    } catch (e) {
      expect(isImageModeError(e, "INVALID_ARGUMENT")).toBe(true);
      expect((e as Error).message).toBe(message);
    }
  });
});

const user = (u: Record<string, unknown>) => ({ customizations: { user: [u] } });

describe("one invalid config per rule", () => {
  const cases: Array<[string, unknown, string | undefined, ValidationIssue]> = [
    [
      "unknown top-level key",
      { nmae: "x" },
      undefined,
      { path: "nmae", code: "UNKNOWN_KEY", message: 'unknown key "nmae"' },
    ],
    [
      "unknown nested key",
      user({ name: "a", pasword: "x" }),
      undefined,
      {
        path: "customizations.user[0].pasword",
        code: "UNKNOWN_KEY",
        message: 'unknown key "pasword"',
      },
    ],
    [
      "wrong type",
      user({ name: "a", uid: "1000" }),
      undefined,
      {
        path: "customizations.user[0].uid",
        code: "INVALID_TYPE",
        message: "expected an integer, got a string",
      },
    ],
    [
      "missing name",
      user({ password: "x" }),
      undefined,
      { path: "customizations.user[0].name", code: "REQUIRED", message: '"name" is required' },
    ],
    [
      "bad user name",
      user({ name: "Alice" }),
      undefined,
      {
        path: "customizations.user[0].name",
        code: "INVALID_NAME",
        message:
          'invalid user name "Alice": must match ^[a-z_][a-z0-9_-]*\\$?$ and be at most 32 characters',
      },
    ],
    [
      "user name longer than 32",
      user({ name: "a".repeat(33) }),
      undefined,
      expect.objectContaining({
        path: "customizations.user[0].name",
        code: "INVALID_NAME",
      }) as unknown as ValidationIssue,
    ],
    [
      "bad supplementary group",
      user({ name: "a", groups: ["wheel", "9bad"] }),
      undefined,
      {
        path: "customizations.user[0].groups[1]",
        code: "INVALID_NAME",
        message:
          'invalid group name "9bad": must match ^[a-z_][a-z0-9_-]*\\$?$ and be at most 32 characters',
      },
    ],
    [
      "colon in a passwd field",
      user({ name: "a", description: "x:y" }),
      undefined,
      {
        path: "customizations.user[0].description",
        code: "INVALID_CHARACTER",
        message: 'description must not contain ":" or a newline',
      },
    ],
    [
      "newline in a password",
      user({ name: "a", password: "x\ny" }),
      undefined,
      {
        path: "customizations.user[0].password",
        code: "INVALID_CHARACTER",
        message: 'password must not contain ":" or a newline',
      },
    ],
    [
      "duplicate user",
      { customizations: { user: [{ name: "a" }, { name: "a" }] } },
      undefined,
      {
        path: "customizations.user[1].name",
        code: "DUPLICATE_USER",
        message: "duplicate user name: a",
      },
    ],
    [
      "duplicate uid",
      {
        customizations: {
          user: [
            { name: "a", uid: 1500 },
            { name: "b", uid: 1500 },
          ],
        },
      },
      undefined,
      {
        path: "customizations.user[1].uid",
        code: "DUPLICATE_UID",
        message: "duplicate user ID: 1500",
      },
    ],
    [
      "duplicate group",
      { customizations: { group: [{ name: "g" }, { name: "g" }] } },
      undefined,
      {
        path: "customizations.group[1].name",
        code: "DUPLICATE_GROUP",
        message: "duplicate group name: g",
      },
    ],
    [
      "duplicate gid",
      {
        customizations: {
          group: [
            { name: "g", gid: 2000 },
            { name: "h", gid: 2000 },
          ],
        },
      },
      undefined,
      {
        path: "customizations.group[1].gid",
        code: "DUPLICATE_GID",
        message: "duplicate group ID: 2000",
      },
    ],
    [
      "customization not allowed for the image type",
      { customizations: { timezone: { timezone: "UTC" } } },
      "qcow2",
      {
        path: "customizations.timezone",
        code: "UNSUPPORTED_CUSTOMIZATION",
        message: UNSUPPORTED_QCOW2,
      },
    ],
    [
      "kernel.name not allowed",
      { customizations: { kernel: { name: "kernel-rt" } } },
      "qcow2",
      {
        path: "customizations.kernel.name",
        code: "UNSUPPORTED_CUSTOMIZATION",
        message: UNSUPPORTED_QCOW2,
      },
    ],
    [
      "unknown size unit",
      { customizations: { filesystem: [{ mountpoint: "/", minsize: "10 GB2" }] } },
      undefined,
      {
        path: "customizations.filesystem[0].minsize",
        code: "INVALID_SIZE",
        message: "unknown data size units in string: 10 GB2",
      },
    ],
    [
      "size and minsize",
      { customizations: { filesystem: [{ mountpoint: "/", minsize: "1 GiB", size: "2 GiB" }] } },
      undefined,
      {
        path: "customizations.filesystem[0].size",
        code: "SIZE_AND_MINSIZE",
        message: "size and minsize cannot both be set (size is an alias for minsize)",
      },
    ],
    [
      "zero minsize",
      { customizations: { filesystem: [{ mountpoint: "/", minsize: 0 }] } },
      undefined,
      {
        path: "customizations.filesystem[0].minsize",
        code: "MINSIZE_ZERO",
        message: "minsize must be greater than 0, got 0",
      },
    ],
    [
      "/var as a mountpoint",
      { customizations: { filesystem: [{ mountpoint: "/var", minsize: 1 }] } },
      undefined,
      {
        path: "customizations.filesystem[0].mountpoint",
        code: "MOUNTPOINT_NOT_ALLOWED",
        message: 'path "/var" is not allowed',
      },
    ],
    [
      "a /var symlink target as a mountpoint",
      { customizations: { filesystem: [{ mountpoint: "/var/home", minsize: 1 }] } },
      undefined,
      {
        path: "customizations.filesystem[0].mountpoint",
        code: "MOUNTPOINT_NOT_ALLOWED",
        message: 'path "/var/home" is not allowed',
      },
    ],
    [
      "a mountpoint outside /var",
      { customizations: { filesystem: [{ mountpoint: "/opt", minsize: 1 }] } },
      undefined,
      {
        path: "customizations.filesystem[0].mountpoint",
        code: "MOUNTPOINT_NOT_ALLOWED",
        message: 'path "/opt" is not allowed',
      },
    ],
    [
      "a non-canonical mountpoint",
      { customizations: { filesystem: [{ mountpoint: "/var/log/", minsize: 1 }] } },
      undefined,
      {
        path: "customizations.filesystem[0].mountpoint",
        code: "MOUNTPOINT_NOT_ALLOWED",
        message: 'path "/var/log/" must be canonical',
      },
    ],
    [
      "disk and filesystem",
      {
        customizations: {
          filesystem: [{ mountpoint: "/", minsize: "10 GiB" }],
          disk: { partitions: [{ mountpoint: "/var/data", minsize: "1 GiB", fs_type: "xfs" }] },
        },
      },
      undefined,
      {
        path: "customizations",
        code: "DISK_AND_FILESYSTEM",
        message: "cannot combine disk and filesystem customizations",
      },
    ],
    [
      "a private key as a key",
      user({
        name: "a",
        key: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
      }),
      undefined,
      {
        path: "customizations.user[0].key",
        code: "INVALID_SSH_KEY",
        message:
          "not an SSH public key: this is a private key; give the public key (the .pub file)",
      },
    ],
    [
      "a key whose data is another type",
      // base64 of an ssh-ed25519 blob header, labelled ssh-rsa
      user({
        name: "a",
        key: `ssh-rsa ${Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from("ssh-ed25519"), Buffer.alloc(36)]).toString("base64")} x`,
      }),
      undefined,
      {
        path: "customizations.user[0].key",
        code: "INVALID_SSH_KEY",
        message: 'not an SSH public key: the key data is a "ssh-ed25519" key, not ssh-rsa',
      },
    ],
    [
      "bad mode",
      { customizations: { files: [{ path: "/etc/x", mode: "rw-r--r--" }] } },
      undefined,
      {
        path: "customizations.files[0].mode",
        code: "INVALID_MODE",
        message: "invalid mode rw-r--r--: must be an octal number",
      },
    ],
    [
      "file outside the allowed paths",
      { customizations: { files: [{ path: "/usr/bin/evil", data: "x" }] } },
      undefined,
      {
        path: "customizations.files[0].path",
        code: "PATH_NOT_ALLOWED",
        message: 'path "/usr/bin/evil" is not allowed',
      },
    ],
    [
      "replacing /etc/passwd",
      { customizations: { files: [{ path: "/etc/passwd", data: "x" }] } },
      undefined,
      {
        path: "customizations.files[0].path",
        code: "PATH_NOT_ALLOWED",
        message: 'path "/etc/passwd" is not allowed',
      },
    ],
    [
      "duplicate file/directory path",
      {
        customizations: {
          directories: [{ path: "/etc/foobar" }],
          files: [{ path: "/etc/foobar" }],
        },
      },
      undefined,
      {
        path: "customizations.files[0].path",
        code: "DUPLICATE_PATH",
        message: "duplicate files / directory customization paths: [/etc/foobar]",
      },
    ],
    [
      "bad permit_root_login",
      { customizations: { sshd: { permit_root_login: "maybe" } } },
      undefined,
      expect.objectContaining({
        path: "customizations.sshd.permit_root_login",
        code: "INVALID_VALUE",
      }) as unknown as ValidationIssue,
    ],
    [
      "ignition url and empty",
      { customizations: { ignition: { firstboot: { url: "http://x", empty: true } } } },
      undefined,
      {
        path: "customizations.ignition.firstboot",
        code: "CONFLICT",
        message: "ignition.firstboot.url is mutually exclusive with ignition.firstboot.empty",
      },
    ],
    [
      "unknown partition table type",
      { customizations: { disk: { type: "mbr" } } },
      undefined,
      {
        path: "customizations.disk.type",
        code: "INVALID_VALUE",
        message: "unknown partition table type: mbr (valid: gpt, dos)",
      },
    ],
    [
      "negative uid",
      user({ name: "a", uid: -1 }),
      undefined,
      {
        path: "customizations.user[0].uid",
        code: "INVALID_VALUE",
        message: "-1 is out of range (0..4294967294)",
      },
    ],
  ];

  it.each(cases)("%s", (_name, config, imageType, expected) => {
    expect(issuesOf(config, imageType)).toContainEqual(expected);
  });

  it("reports every problem at once", () => {
    const issues = issuesOf(
      {
        nmae: "x",
        customizations: {
          user: [{ name: "Bad" }, { name: "ok", groups: ["x:y"] }],
          group: [
            { name: "g", gid: 5 },
            { name: "h", gid: 5 },
          ],
          filesystem: [{ mountpoint: "/var", minsize: "1 XB" }],
          hostname: "h",
        },
      },
      "qcow2",
    );
    expect(issues.map((i) => `${i.path} ${i.code}`).sort()).toEqual([
      "customizations.filesystem[0].minsize INVALID_SIZE",
      "customizations.group[1].gid DUPLICATE_GID",
      "customizations.hostname UNSUPPORTED_CUSTOMIZATION",
      "customizations.user[0].name INVALID_NAME",
      "customizations.user[1].groups[0] INVALID_NAME",
      "nmae UNKNOWN_KEY",
    ]);
  });

  it("still checks the sound elements of a list that has a broken one", () => {
    const issues = issuesOf({
      customizations: { user: [{ name: "a", uid: "x" }, { name: "b" }, { name: "b" }] },
    });
    expect(issues).toEqual([
      {
        path: "customizations.user[0].uid",
        code: "INVALID_TYPE",
        message: "expected an integer, got a string",
      },
      {
        path: "customizations.user[2].name",
        code: "DUPLICATE_USER",
        message: "duplicate user name: b",
      },
    ]);
  });

  it("refuses an unknown image type as a bad argument", () => {
    expect(() => validateBlueprint({}, { imageType: "floppy" })).toThrow(
      /unknown image type "floppy"/,
    );
  });

  it("accepts every allowed /var mountpoint and size form", () => {
    const formats: ConfigFormat[] = ["toml", "json"];
    for (const f of formats) {
      const text =
        f === "toml"
          ? '[[customizations.filesystem]]\nmountpoint = "/var/log"\nsize = "2.5GB"\n[[customizations.filesystem]]\nmountpoint = "/boot"\nminsize = 1073741824\n'
          : '{"customizations":{"filesystem":[{"mountpoint":"/var/log","size":"2.5GB"},{"mountpoint":"/boot","minsize":1073741824}]}}';
      expect(modelOf(parseBlueprint(text, f), "raw").customizations?.filesystem).toEqual([
        { mountpoint: "/var/log", minsize: 2500000000 },
        { mountpoint: "/boot", minsize: 1073741824 },
      ]);
    }
  });
});
