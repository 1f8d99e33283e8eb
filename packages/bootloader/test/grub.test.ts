import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fc, test } from "@fast-check/vitest";
import { requireTool } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createBlsEntry,
  GRUBENV_SIZE,
  parseBlsEntry,
  parseGrubenv,
  renderGrubConfig,
  serializeGrubenv,
} from "../src/index.js";
import { ostreeVectorEntries, run } from "./helpers.js";

let dir: string;
beforeAll(async () => {
  for (const t of ["grub-editenv", "grub-script-check"]) requireTool(t);
  dir = await mkdtemp(path.join(tmpdir(), "grub-test-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const envValue = fc.stringMatching(/^[A-Za-z0-9 _.:=+/-]{0,20}$/);
const envName = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/);

describe("grubenv against grub-editenv", () => {
  it("grub-editenv lists what we write; we read what it writes", async () => {
    const f = path.join(dir, "ours");
    await writeFile(
      f,
      serializeGrubenv(
        new Map([
          ["saved_entry", "ostree-2-testos"],
          ["boot_success", "1"],
          ["odd", "a=b\\c"],
        ]),
      ),
    );
    expect((await run("grub-editenv", [f, "list"])).stdout).toBe(
      "saved_entry=ostree-2-testos\nboot_success=1\nodd=a=b\\c\n",
    );
    await run("grub-editenv", [f, "set", "next_entry=ostree-1-testos", "menu_auto_hide=1"]);
    await run("grub-editenv", [f, "unset", "boot_success"]);
    const bytes = await readFile(f);
    expect(bytes.length).toBe(GRUBENV_SIZE);
    expect([...parseGrubenv(bytes)]).toEqual([
      ["saved_entry", "ostree-2-testos"],
      ["odd", "a=b\\c"],
      ["next_entry", "ostree-1-testos"],
      ["menu_auto_hide", "1"],
    ]);
    const fresh = path.join(dir, "fresh");
    await run("grub-editenv", [fresh, "create"]);
    const created = await readFile(fresh);
    expect(Buffer.from(serializeGrubenv(new Map()))).toEqual(created);
  });
  it("is exactly 1024 bytes and fails clearly when full", () => {
    expect(serializeGrubenv({ a: "b" }).length).toBe(1024);
    expect(() => serializeGrubenv({ big: "x".repeat(1000) })).toThrow(/grubenv is full/);
    expect(() => serializeGrubenv({ "a=b": "c" })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
    expect(() => parseGrubenv(new TextEncoder().encode("hello"))).toThrow(
      expect.objectContaining({ code: "PARSE" }),
    );
  });
  test.prop(
    [fc.uniqueArray(fc.tuple(envName, envValue), { selector: (t) => t[0], maxLength: 12 })],
    { numRuns: 15 },
  )("random variables: grub-editenv reads ours, we read theirs", async (vars) => {
    const f = path.join(dir, "prop");
    await writeFile(f, serializeGrubenv(new Map(vars)));
    const listed = (await run("grub-editenv", [f, "list"])).stdout;
    expect(listed).toBe(vars.map(([k, v]) => `${k}=${v}\n`).join(""));
    await rm(f, { force: true });
    await run("grub-editenv", [f, "create"]);
    if (vars.length > 0)
      await run("grub-editenv", [f, "set", ...vars.map(([k, v]) => `${k}=${v}`)]);
    expect([...parseGrubenv(await readFile(f))]).toEqual(vars);
  });
});

async function scriptCheck(cfg: string): Promise<void> {
  const f = path.join(dir, "grub.cfg");
  await writeFile(f, cfg);
  await run("grub-script-check", [f]);
}

describe("renderGrubConfig", () => {
  const ostree = ostreeVectorEntries()
    .filter((v) => v.section.includes(" 9. "))
    .map((v) => parseBlsEntry(v.text, v.fileName));
  it("renders ostree's entries in ostree's order with the BLS ids; grub-script-check accepts it", async () => {
    const cfg = renderGrubConfig(ostree, { bootFsUuid: "0123-ABCD", timeout: 3 });
    await scriptCheck(cfg);
    const titles = [...cfg.matchAll(/^menuentry '([^']*)'.*--id (\S+) \{$/gm)].map((m) => [
      m[1],
      m[2],
    ]);
    expect(titles).toEqual([
      ["Test OS 4.0 (ostree:0)", "ostree-3-testos"],
      ["Test OS (ostree:1)", "ostree-2-testos"],
      ["Test OS (ostree:2)", "ostree-1-testos"],
    ]);
    expect(cfg).toContain("set default=ostree-3-testos\n");
    expect(cfg).toContain("search --no-floppy --fs-uuid --set=root 0123-ABCD\n");
    expect(cfg).toMatch(
      /^ {2}linux \/ostree\/testos-a76d[0-9a-f]+\/vmlinuz-6\.1\.0 root=LABEL=root rw console=ttyS0,115200 ostree=\/ostree\/boot\.1\/testos\/a76d[0-9a-f]+\/0 quiet$/m,
    );
    const bls = renderGrubConfig(ostree, { mode: "blscfg" });
    await scriptCheck(bls);
    expect(bls).toMatch(/\nblscfg\n$/);
  });
  it("quotes titles and arguments GRUB would otherwise interpret", async () => {
    const e = createBlsEntry("x.conf", {
      title: "It's $HOME; {x}",
      linux: "/vmlinuz",
      options: 'a=$b c="d e" f;g',
      initrd: ["/i1", "/i 2"],
    });
    const cfg = renderGrubConfig([e], {
      defaultEntry: "x",
      serial: null,
      useGrubenv: false,
      timeout: 0,
    });
    await scriptCheck(cfg);
    expect(cfg).toContain("menuentry 'It'\\''s $HOME; {x}'");
    expect(cfg).toContain(`  linux /vmlinuz 'a=$b' 'c="d e"' 'f;g'`);
    expect(cfg).toContain("  initrd /i1 '/i 2'");
  });
  it("the oracle rejects broken scripts", async () => {
    await expect(scriptCheck("if true; then\n")).rejects.toThrow();
  });
  it("rejects an unknown default and an entry without linux", () => {
    expect(() => renderGrubConfig(ostree, { defaultEntry: "nope" })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
    expect(() => renderGrubConfig([createBlsEntry("y.conf", { title: "y" })])).toThrow(
      /no linux line/,
    );
  });
  const text = fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/[\n\0\r]/.test(s));
  test.prop(
    [
      fc.array(fc.tuple(text, text, fc.array(text, { maxLength: 3 })), {
        minLength: 1,
        maxLength: 4,
      }),
      fc.nat(10),
      fc.boolean(),
    ],
    { numRuns: 25 },
  )("grub-script-check accepts every rendered config", async (specs, timeout, env) => {
    const entries = specs.map(([title, opt, initrds], i) =>
      createBlsEntry(`e${i}.conf`, {
        title,
        linux: `/vmlinuz-${i}`,
        options: `x=${i} ${opt.replace(/"/g, "")}`,
        initrd: initrds.map((p) => `/${p}`),
      }),
    );
    await scriptCheck(
      renderGrubConfig(entries, { timeout, useGrubenv: env, bootFsUuid: "1234-ABCD" }),
    );
  });
});
