import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { isImageModeError } from "@imagemode/core";
import { requireTool } from "@imagemode/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type BootloaderBackend,
  type BootloaderTargets,
  createBlsEntry,
  encodeLoaderEfiVariable,
  grubBackend,
  parseEntryFileName,
  parseGrubenv,
  SYSTEMD_BOOT_EFI,
  sortBootEntries,
  systemdBootBackend,
  withBootCounting,
} from "../src/index.js";
import { bootctlList, run } from "./helpers.js";

const HOST_SDBOOT = path.join("/", SYSTEMD_BOOT_EFI);
const entries = [
  createBlsEntry("os-1.2.conf", {
    title: "OS 1.2",
    version: "1.2",
    linux: "/k/vmlinuz-1.2",
    initrd: "/k/initrd-1.2",
    options: "root=UUID=1 rw which=1.2",
  }),
  createBlsEntry("os-1.10.conf", {
    title: "OS 1.10",
    version: "1.10",
    linux: "/k/vmlinuz-1.10",
    initrd: "/k/initrd-1.10",
    options: "root=UUID=1 rw which=1.10",
  }),
  createBlsEntry("os-1.9.conf", {
    title: "OS 1.9",
    version: "1.9",
    linux: "/k/vmlinuz-1.9",
    options: "root=UUID=1 rw which=1.9",
  }),
];
const ids = (es: { fileName: string }[]) => es.map((e) => parseEntryFileName(e.fileName).id);

/** The one conformance suite every backend passes. */
function conformance(
  name: string,
  make: () => BootloaderBackend,
  extraChecks: (targets: BootloaderTargets, backend: BootloaderBackend) => Promise<void>,
) {
  describe(`BootloaderBackend conformance: ${name}`, () => {
    let root: string;
    let targets: BootloaderTargets;
    beforeEach(async () => {
      root = await mkdtemp(path.join(tmpdir(), `backend-${name}-`));
      targets = { esp: path.join(root, "esp"), boot: path.join(root, "boot") };
    });
    afterEach(async () => {
      await rm(root, { recursive: true, force: true });
    });
    it("plans plain data, applies it, lists entries in UAPI order", async () => {
      const b = make();
      const plan = await b.plan({ entries, timeout: 1 });
      expect(
        JSON.parse(JSON.stringify(plan, (_k, v) => (v instanceof Uint8Array ? [...v] : v))).backend,
      ).toBe(b.name);
      await b.apply(plan, targets);
      const listed = await b.listEntries(targets);
      expect(ids(listed)).toEqual(["os-1.10", "os-1.9", "os-1.2"]);
      expect(ids(listed)).toEqual(ids(sortBootEntries(entries)));
      expect(await b.readDefault(targets)).toBe("os-1.10");
      await extraChecks(targets, b);
    });
    it("honours defaultEntry at install and setDefault afterwards", async () => {
      const b = make();
      await b.apply(await b.plan({ entries, defaultEntry: "os-1.2" }), targets);
      expect(await b.readDefault(targets)).toBe("os-1.2");
      await b.setDefault(targets, "os-1.9");
      expect(await b.readDefault(targets)).toBe("os-1.9");
      await extraChecks(targets, b);
    });
    it("rejects unknown ids with NOT_FOUND and honours abort", async () => {
      const b = make();
      await b.apply(await b.plan({ entries }), targets);
      const err = await b.setDefault(targets, "nope").catch((e) => e);
      expect(isImageModeError(err, "NOT_FOUND")).toBe(true);
      const ac = new AbortController();
      ac.abort();
      const aborted = await b
        .apply(await b.plan({ entries }), targets, { signal: ac.signal })
        .catch((e) => e);
      expect(isImageModeError(aborted, "ABORTED")).toBe(true);
      await expect(b.plan({ entries, defaultEntry: "nope" })).rejects.toThrow();
    });
    it("keeps boot-counted entries addressable by id", async () => {
      const b = make();
      await b.apply(await b.plan({ entries: withBootCounting(entries, 3) }), targets);
      expect((await b.listEntries(targets)).map((e) => e.fileName)).toEqual([
        "os-1.10+3.conf",
        "os-1.9+3.conf",
        "os-1.2+3.conf",
      ]);
      await b.setDefault(targets, "os-1.2");
      expect(await b.readDefault(targets)).toBe("os-1.2");
    });
  });
}

beforeEach(() => {
  for (const t of ["bootctl", "unshare", "grub-editenv", "grub-script-check"]) requireTool(t);
});

conformance(
  "systemd-boot",
  () => systemdBootBackend({ efiBinary: HOST_SDBOOT, loader: { editor: false } }),
  async (targets, b) => {
    // The real tool agrees on order and default.
    await access(HOST_SDBOOT);
    const listed = await bootctlList(targets.esp!, targets.boot!);
    expect(listed.map((l) => l.source)).toEqual(
      (await b.listEntries(targets)).map((e) => e.fileName),
    );
    expect(listed.find((l) => l.isDefault)?.id).toBe(`${await b.readDefault(targets)}.conf`);
  },
);

conformance(
  "grub",
  () => grubBackend({ bootFsUuid: "0123-4567" }),
  async (targets, b) => {
    const cfg = path.join(targets.boot!, "grub/grub.cfg");
    await run("grub-script-check", [cfg]);
    const env = (await run("grub-editenv", [path.join(targets.boot!, "grub/grubenv"), "list"]))
      .stdout;
    const def = await b.readDefault(targets);
    if (env.includes("saved_entry=")) expect(env).toContain(`saved_entry=${def}\n`);
    else expect(await readFile(cfg, "utf8")).toContain(`set default=${def}\n`);
  },
);

describe("backend specifics", () => {
  it("systemd-boot: entries on XBOOTLDR, loader.conf, one-shot needs EFI variables", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "sdboot-"));
    try {
      const targets = { esp: path.join(root, "esp"), boot: path.join(root, "boot") };
      const b = systemdBootBackend({ efiBinary: HOST_SDBOOT, entriesOn: "boot" });
      await b.apply(
        await b.plan({ entries: withBootCounting(entries), defaultEntry: "os-1.9", timeout: 2 }),
        targets,
      );
      expect(await readFile(path.join(targets.esp, "loader/loader.conf"), "utf8")).toBe(
        "timeout 2\ndefault os-1.9[.+]*conf\n",
      );
      const listed = await bootctlList(targets.esp, targets.boot);
      expect(listed.map((l) => [l.source, l.isDefault])).toEqual([
        ["os-1.10+3.conf", false],
        ["os-1.9+3.conf", true],
        ["os-1.2+3.conf", false],
      ]);
      const err = await b.setDefault(targets, "os-1.2", { oneShot: true }).catch((e) => e);
      expect(isImageModeError(err, "UNSUPPORTED")).toBe(true);
      const efivars = path.join(root, "efivars");
      await (await import("node:fs/promises")).mkdir(efivars);
      const live = systemdBootBackend({
        efiBinary: HOST_SDBOOT,
        entriesOn: "boot",
        efivarsDir: efivars,
      });
      await live.setDefault(targets, "os-1.2", { oneShot: true });
      const v = await readFile(
        path.join(efivars, "LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"),
      );
      expect([...v.subarray(0, 4)]).toEqual([7, 0, 0, 0]);
      expect(v.subarray(4).toString("utf16le")).toBe("os-1.2+3.conf\0");
      expect(encodeLoaderEfiVariable("a").length).toBe(8);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
  it("grub: one-shot via next_entry in grubenv", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "grubbk-"));
    try {
      const targets = { boot: path.join(root, "boot") };
      const b = grubBackend({ bootFsUuid: "0123-4567" });
      await b.apply(await b.plan({ entries }), targets);
      await b.setDefault(targets, "os-1.2", { oneShot: true });
      const env = parseGrubenv(await readFile(path.join(targets.boot, "grub/grubenv")));
      expect(env.get("next_entry")).toBe("os-1.2");
      expect(
        (await run("grub-editenv", [path.join(targets.boot, "grub/grubenv"), "list"])).stdout,
      ).toBe("next_entry=os-1.2\n");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
