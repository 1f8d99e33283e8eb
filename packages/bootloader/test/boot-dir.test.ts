import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { isImageModeError } from "@imagemode/core";
import { requireTool } from "@imagemode/testkit";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  applyBootSwap,
  bootSwapFiles,
  entryOstreeBootPath,
  type OstreeBootDeployment,
  ostreeBootPath,
  parseOstreeBootPath,
  planBootSwap,
  planOstreeEntries,
  readBootVersion,
  readOstreeEntries,
  renderGrubConfig,
  serializeBlsEntry,
} from "../src/index.js";
import { ostreeVectorEntries, run } from "./helpers.js";

const V4 = "a76d094f5128c2b70cfd18272e660bb2bf592254c37553c83d2c76bbcda344b6";
const V1 = "7aeb9d7187e3c2800b811cb8b012e1902973b2ed091447c0a314e00d8a450144";
const kargs = "root=LABEL=root rw console=ttyS0,115200";

describe("ostree's BLS entries", () => {
  it("planOstreeEntries writes the bytes ostree 2022.7 wrote (sample §9: three deployments, bootversion 1)", () => {
    const deployments: OstreeBootDeployment[] = [
      {
        stateroot: "testos",
        bootcsum: V4,
        kver: "6.1.0",
        kargs: `${kargs} ostree=/ostree/boot.0/testos/${V1}/0 quiet`,
        osName: "Test OS",
        version: "4.0",
      },
      { stateroot: "testos", bootcsum: V1, kver: "6.0.0", kargs, osName: "Test OS" },
      { stateroot: "testos", bootcsum: V1, kver: "6.0.0", kargs, osName: "Test OS" },
    ];
    const ours = planOstreeEntries(deployments, { bootversion: 1 });
    const theirs = ostreeVectorEntries().filter((v) => v.section.includes(" 9. "));
    expect(theirs.length).toBe(3);
    for (const t of theirs) {
      const o = ours.find((e) => e.fileName === t.fileName);
      expect(o && serializeBlsEntry(o)).toBe(t.text);
    }
  });
  it("matches the first deploy (§4) and the plain naming / boot counting variants", () => {
    const d: OstreeBootDeployment = {
      stateroot: "testos",
      bootcsum: V1,
      kver: "6.0.0",
      kargs,
      osName: "Test OS",
    };
    const first = ostreeVectorEntries().find((v) => v.section.includes(" 4. "));
    expect(serializeBlsEntry(planOstreeEntries([d], { bootversion: 1 })[0]!)).toBe(first?.text);
    expect(
      planOstreeEntries([d, d], { bootversion: 0, naming: "plain", bootCountingTries: 3 }).map(
        (e) => e.fileName,
      ),
    ).toEqual(["ostree-2+3.conf", "ostree-1+3.conf"]);
    const multi = planOstreeEntries([d, { ...d, stateroot: "other" }], { bootversion: 0 });
    expect(multi.map((e) => e.lines[0])).toMatchObject([
      { value: "Test OS (ostree:testos:0)" },
      { value: "Test OS (ostree:other:1)" },
    ]);
  });
  it("builds and parses ostree=", () => {
    const a = { bootversion: 1 as const, stateroot: "testos", bootcsum: V4, bootserial: 2 };
    expect(ostreeBootPath(a)).toBe(`/ostree/boot.1/testos/${V4}/2`);
    expect(parseOstreeBootPath(ostreeBootPath(a))).toEqual(a);
    expect(() => parseOstreeBootPath("/ostree/boot.2/x/y/0")).toThrow(
      expect.objectContaining({ code: "PARSE" }),
    );
    expect(() => ostreeBootPath({ ...a, stateroot: "a/b" })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});

describe("the boot directory swap", () => {
  let boot: string;
  beforeEach(async () => {
    boot = await mkdtemp(path.join(tmpdir(), "bootdir-"));
  });
  afterEach(async () => {
    await rm(boot, { recursive: true, force: true });
  });
  const dep = (n: number): OstreeBootDeployment => ({
    stateroot: "os",
    bootcsum: n % 2 ? V1 : V4,
    kver: "6.1.0",
    kargs: `rw n=${n}`,
    osName: "OS",
    version: String(n),
  });

  it("writes loader.N, swaps the symlink atomically, reads back; entries as ostree sorts them", async () => {
    expect(await readBootVersion(boot)).toBe(0);
    const e1 = planOstreeEntries([dep(1)], { bootversion: 1 });
    const p1 = planBootSwap(0, e1, [{ path: "grub.cfg", content: renderGrubConfig(e1) }]);
    await applyBootSwap(boot, p1);
    expect(await readlink(path.join(boot, "loader"))).toBe("loader.1");
    expect(await readlink(path.join(boot, "boot"))).toBe(".");
    expect(await readBootVersion(boot)).toBe(1);
    expect(await readdir(path.join(boot, "loader/entries"))).toEqual(["ostree-1-os.conf"]);
    expect(await readFile(path.join(boot, "loader/grub.cfg"), "utf8")).toContain("n=1");

    const deps = Array.from({ length: 11 }, (_, i) => dep(11 - i));
    const e2 = planOstreeEntries(deps, { bootversion: 0 });
    await applyBootSwap(boot, planBootSwap(1, e2), { cleanup: true });
    expect(await readBootVersion(boot)).toBe(0);
    await expect(lstat(path.join(boot, "loader.1"))).rejects.toThrow();
    const back = await readOstreeEntries(boot);
    expect(back.map((e) => e.fileName)).toEqual(e2.map((e) => e.fileName)); // ostree-11 before ostree-10 … ostree-1
    expect(back.map((e) => entryOstreeBootPath(e).bootversion)).toEqual(Array(11).fill(0));
    expect(await readdir(boot)).not.toContain("loader.tmp");
  });
  it("refuses a stale plan and a foreign loader target", async () => {
    const p = planBootSwap(1, planOstreeEntries([dep(1)], { bootversion: 0 }));
    const err = await applyBootSwap(boot, p).catch((e) => e);
    expect(isImageModeError(err, "CONFLICT")).toBe(true);
    await symlink("loader.7", path.join(boot, "loader"));
    expect(await readBootVersion(boot).catch((e) => e.code)).toBe("INVALID_STATE");
  });
  it("never touches the live loader directory before the rename", async () => {
    await applyBootSwap(boot, planBootSwap(0, planOstreeEntries([dep(1)], { bootversion: 1 })));
    const live = await readFile(path.join(boot, "loader.1/entries/ostree-1-os.conf"), "utf8");
    const ac = new AbortController();
    const p = planBootSwap(1, planOstreeEntries([dep(2)], { bootversion: 0 }));
    let calls = 0;
    const fs = (await import("../src/index.js")).nodeBootFs;
    const failing = {
      ...fs,
      writeFile: async (...a: Parameters<typeof fs.writeFile>) => {
        if (++calls > 0) ac.abort(new Error("crash"));
        return fs.writeFile(...a);
      },
    };
    await expect(applyBootSwap(boot, p, { fs: failing, signal: ac.signal })).rejects.toThrow();
    expect(await readBootVersion(boot)).toBe(1);
    expect(await readFile(path.join(boot, "loader/entries/ostree-1-os.conf"), "utf8")).toBe(live);
  });
  it("lists the files an image builder places for a fresh /boot", () => {
    const files = bootSwapFiles(planBootSwap(0, planOstreeEntries([dep(1)], { bootversion: 1 })));
    expect(files.map((f) => [f.kind, f.path])).toEqual([
      ["dir", "loader.1/entries"],
      ["file", "loader.1/entries/ostree-1-os.conf"],
      ["symlink", "boot"],
      ["symlink", "loader"],
    ]);
  });
  it("writes nothing outside the boot directory", async () => {
    const p = planBootSwap(0, [], [{ path: "../escape", content: "x" }]);
    await expect(applyBootSwap(boot, p)).rejects.toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
    await mkdir(path.join(boot, "x"));
    await writeFile(path.join(boot, "x/keep"), "");
    expect(await readdir(path.dirname(boot))).not.toContain("escape");
  });
});

describe("ostree itself reads the boot directory we write", () => {
  let sysroot: string;
  beforeEach(async () => {
    requireTool("ostree");
    sysroot = await mkdtemp(path.join(tmpdir(), "sysroot-"));
  });
  afterEach(async () => {
    await rm(sysroot, { recursive: true, force: true });
  });
  const status = async () => {
    const argv = ["admin", "status", `--sysroot=${sysroot}`];
    const { stdout } =
      process.getuid?.() === 0
        ? await run("setpriv", [
            "--bounding-set=-sys_admin",
            "--inh-caps=-sys_admin",
            "ostree",
            ...argv,
          ])
        : await run("ostree", argv);
    return stdout;
  };
  /** Creates deployments on disk and the `ostree/boot.N.M` symlink farm for `entries` (what deploy-manager does). */
  const farm = async (
    bootversion: 0 | 1,
    deps: { commit: string; bootcsum: string }[],
    entries: ReturnType<typeof planOstreeEntries>,
  ) => {
    await rm(path.join(sysroot, `ostree/boot.${bootversion}.0`), { recursive: true, force: true });
    for (const [i, d] of deps.entries()) {
      const e = entries[i]!;
      const { bootserial } = entryOstreeBootPath(e);
      const dep = path.join(sysroot, "ostree/deploy/os/deploy", `${d.commit}.0`);
      await mkdir(dep, { recursive: true });
      await writeFile(`${dep}.origin`, "[origin]\nrefspec=os/stable\n");
      const link = path.join(
        sysroot,
        `ostree/boot.${bootversion}.0/os/${d.bootcsum}/${bootserial}`,
      );
      await mkdir(path.dirname(link), { recursive: true });
      await symlink(`../../../deploy/os/deploy/${d.commit}.0`, link);
    }
    await rm(path.join(sysroot, `ostree/boot.${bootversion}`), { force: true });
    await symlink(`boot.${bootversion}.0`, path.join(sysroot, `ostree/boot.${bootversion}`));
  };
  it("`ostree admin status` lists our deployments in our order, across two bootversion switches", async () => {
    await mkdir(path.join(sysroot, "ostree/deploy/os/var"), { recursive: true });
    await mkdir(path.join(sysroot, "boot"), { recursive: true });
    await run("ostree", ["init", `--repo=${path.join(sysroot, "ostree/repo")}`, "--mode=bare"]);
    const c = (ch: string) => ch.repeat(64);
    const boot = path.join(sysroot, "boot");
    const d1 = [{ commit: c("1"), bootcsum: V1 }];
    const e1 = planOstreeEntries(
      d1.map((d) => ({
        stateroot: "os",
        bootcsum: d.bootcsum,
        kver: "6.0.0",
        kargs: "rw",
        osName: "OS",
      })),
      { bootversion: 1 },
    );
    await farm(1, d1, e1);
    await applyBootSwap(boot, planBootSwap(await readBootVersion(boot), e1));
    expect(await status()).toContain(`os ${c("1")}.0`);

    // Three deployments, two sharing a bootcsum (bootserials 0 and 1), written as bootversion 0.
    const d2 = [
      { commit: c("3"), bootcsum: V4 },
      { commit: c("2"), bootcsum: V1 },
      { commit: c("1"), bootcsum: V1 },
    ];
    const e2 = planOstreeEntries(
      d2.map((d) => ({
        stateroot: "os",
        bootcsum: d.bootcsum,
        kver: "6.1.0",
        kargs: "rw quiet",
        osName: "OS",
      })),
      { bootversion: 0 },
    );
    await farm(0, d2, e2);
    await applyBootSwap(boot, planBootSwap(await readBootVersion(boot), e2), { cleanup: true });
    const out = await status();
    const listed = [...out.matchAll(/^[* ] os ([0-9a-f]{64})\.0$/gm)].map((m) => m[1]);
    expect(listed).toEqual([c("3"), c("2"), c("1")]);
  });
});
