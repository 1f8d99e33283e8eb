import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "@imagemode/testkit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyPlan,
  planCustomizations,
  publicKeyProblem,
  readEtcFiles,
  validateBlueprint,
} from "../src/index.js";
import { makeRoot, run } from "./helpers.js";

// Keys made by the real ssh-keygen: every type must be accepted, private keys refused, and the
// authorized_keys file apply writes must be readable by ssh-keygen.
describe("SSH keys against ssh-keygen", () => {
  let dir: { path: string; cleanup(): Promise<void> };
  const pub: string[] = [];
  const priv: string[] = [];

  beforeAll(async () => {
    dir = await tempDir("blueprint-ssh-");
    for (const [type, bits] of [
      ["ed25519", []],
      ["rsa", ["-b", "2048"]],
      ["ecdsa", ["-b", "384"]],
    ] as const) {
      const f = join(dir.path, `id_${type}`);
      const r = await run("ssh-keygen", [
        "-q",
        "-t",
        type,
        ...bits,
        "-N",
        "",
        "-C",
        `test-${type}`,
        "-f",
        f,
      ]);
      expect(r.code).toBe(0);
      pub.push((await readFile(`${f}.pub`, "utf8")).trim());
      priv.push(await readFile(f, "utf8"));
    }
  });
  afterAll(async () => dir?.cleanup());

  it("accepts every public key ssh-keygen makes and refuses the private keys", () => {
    for (const p of pub) expect(publicKeyProblem(p), p).toBeUndefined();
    for (const k of priv) {
      const r = validateBlueprint({ customizations: { user: [{ name: "a", key: k }] } });
      expect(r.ok ? [] : r.issues.map((i) => i.code)).toEqual(["INVALID_SSH_KEY"]);
    }
  });

  it("writes an authorized_keys that ssh-keygen -l reads, one fingerprint per key", async () => {
    const root = join(dir.path, "root");
    await makeRoot(root, "/etc");
    const r = validateBlueprint(
      { customizations: { user: [{ name: "kim", key: `${pub.join("\n")}\n` }] } },
      { imageType: "qcow2" },
    );
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    await applyPlan(planCustomizations(r.blueprint, await readEtcFiles(root)), root);
    const l = await run("ssh-keygen", [
      "-l",
      "-f",
      join(root, "var/home/kim/.ssh/authorized_keys"),
    ]);
    expect(l.code).toBe(0);
    const lines = l.stdout.trim().split("\n");
    expect(lines.map((x) => x.split(" ").pop())).toEqual(["(ED25519)", "(RSA)", "(ECDSA)"]);
    expect(lines.map((x) => x.split(" ")[2])).toEqual(["test-ed25519", "test-rsa", "test-ecdsa"]);
  });
});
