import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import {
  hashPassword,
  isPasswordHash,
  makeSalt,
  parseBlueprint,
  planCustomizations,
  splitKernelArgs,
  validateBlueprint,
} from "../src/index.js";
import { run } from "./helpers.js";

describe("password hashes", () => {
  it.each(["secret", "pässwörd", "correct horse battery staple", "x".repeat(100)])(
    "%j hashes like openssl passwd -6",
    async (pw) => {
      const salt = makeSalt();
      const ssl = await run("openssl", ["passwd", "-6", "-salt", salt, pw]);
      expect(ssl.code).toBe(0);
      expect(hashPassword(pw, salt)).toBe(ssl.stdout.trim());
    },
  );

  test.prop([fc.uint8Array({ minLength: 16, maxLength: 16 })])(
    "salts are 16 crypt characters",
    (bytes) => {
      expect(makeSalt(() => bytes)).toMatch(/^[./0-9A-Za-z]{16}$/);
    },
  );

  it("keeps $6$, $5$ and $2b$ hashes, hashes everything else", () => {
    expect(
      ["$6$a$b", "$5$a$b", "$2b$10$abc", "$1$a$b", "$y$j9T$a$b", "plain"].map(isPasswordHash),
    ).toEqual([true, true, true, false, false, false]);
  });

  it("changes root's password in shadow without touching passwd", () => {
    const r = validateBlueprint(
      parseBlueprint('[[customizations.user]]\nname = "root"\npassword = "$5$salt$hash"\n', "toml"),
    );
    if (!r.ok) throw new Error("invalid");
    const p = planCustomizations(
      r.blueprint,
      {
        passwd: "root:x:0:0:root:/root:/bin/bash\n",
        group: "root:x:0:\n",
        shadow: "root:*:19000:0:99999:7:::\n",
      },
      { clock: () => 20000 * 86_400_000 },
    );
    expect(p.edits.map((e) => e.path)).toEqual(["etc/shadow"]);
    const shadow = p.edits[0];
    expect(shadow?.type === "file" && shadow.content).toBe(
      "root:$5$salt$hash:20000:0:99999:7:::\n",
    );
    expect(p.users[0]).toMatchObject({ name: "root", created: false, password: "hash" });
  });
});

describe("kernel arguments", () => {
  it("splits on whitespace, keeping double-quoted values together", () => {
    expect(splitKernelArgs("  console=ttyS0,115200n8 quiet  ")).toEqual([
      "console=ttyS0,115200n8",
      "quiet",
    ]);
    expect(splitKernelArgs('dyndbg="file foo.c +p" rd.break')).toEqual([
      'dyndbg="file foo.c +p"',
      "rd.break",
    ]);
    expect(splitKernelArgs("")).toEqual([]);
  });
});
