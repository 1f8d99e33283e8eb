import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fc, test } from "@fast-check/vitest";
import { isImageModeError } from "@imagemode/core";
import { describe, expect, it } from "vitest";
import { KernelArgs, kargsForArchitecture, loadKargsD, parseKargsToml } from "../src/index.js";

describe("KernelArgs", () => {
  it("parses quoting, key=value and repeated keys", () => {
    const k = KernelArgs.parse(
      'root=UUID=abc  rw console=tty0 console=ttyS0,115200 dyndbg="file foo.c +p" "a b=c d" quiet',
    );
    expect(k.toArray()).toEqual([
      "root=UUID=abc",
      "rw",
      "console=tty0",
      "console=ttyS0,115200",
      'dyndbg="file foo.c +p"',
      '"a b=c d"',
      "quiet",
    ]);
    expect(k.get("root")).toBe("UUID=abc");
    expect(k.getAll("console")).toEqual(["tty0", "ttyS0,115200"]);
    expect(k.get("dyndbg")).toBe("file foo.c +p");
    expect(k.get("a b")).toBe("c d");
    expect(k.has("quiet")).toBe(true);
    expect(k.has("console=tty0")).toBe(true);
    expect(k.has("console=tty1")).toBe(false);
  });
  it("appends, deletes exact or by key, replaces in place", () => {
    const k = KernelArgs.parse(
      "root=/dev/vda3 rw console=tty0 console=ttyS0 quiet ostree=/ostree/boot.1/os/abc/0 splash",
    );
    k.delete("console=tty0");
    expect(k.toString()).toBe(
      "root=/dev/vda3 rw console=ttyS0 quiet ostree=/ostree/boot.1/os/abc/0 splash",
    );
    k.delete("quiet").append("quiet").append("foo=a b");
    expect(k.toString()).toBe(
      'root=/dev/vda3 rw console=ttyS0 ostree=/ostree/boot.1/os/abc/0 splash quiet foo="a b"',
    );
    k.replace("ostree=/ostree/boot.0/os/abc/1");
    expect(k.toString()).toBe(
      'root=/dev/vda3 rw console=ttyS0 ostree=/ostree/boot.0/os/abc/1 splash quiet foo="a b"',
    );
    k.delete("console").replace("new=1");
    expect(k.toString()).toBe(
      'root=/dev/vda3 rw ostree=/ostree/boot.0/os/abc/1 splash quiet foo="a b" new=1',
    );
    k.appendIfMissing("rw").appendIfMissing("ro");
    expect(k.toArray().slice(-1)).toEqual(["ro"]);
  });
  it("applies bootc's kargs.d diff: removed image args deleted, added appended, local kept", () => {
    const booted = KernelArgs.parse(
      "root=UUID=1 rw console=ttyS0 mitigations=auto local.thing=1 nosmt",
    );
    booted.applyImageDiff(
      ["mitigations=auto", "nosmt", "console=ttyS0"],
      ["console=ttyS0", "init_on_alloc=1"],
    );
    expect(booted.toString()).toBe("root=UUID=1 rw console=ttyS0 local.thing=1 init_on_alloc=1");
  });
  it("rejects an unterminated quote with a typed error", () => {
    expect(() => KernelArgs.parse('a="b')).toThrow(expect.objectContaining({ code: "PARSE" }));
    expect(() => KernelArgs.parse("a").append("")).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
  const word = fc.stringMatching(/^[A-Za-z0-9_.,:/=-]{1,8}$/);
  const arg = fc.oneof(
    word,
    fc
      .tuple(fc.stringMatching(/^[a-z_]{1,5}$/), fc.stringMatching(/^[a-z ]{1,6}$/))
      .map(([k, v]) => `${k}="${v}"`),
  );
  test.prop([fc.array(arg, { maxLength: 8 }), fc.constantFrom(" ", "  ", "\t")])(
    "toString round-trips (whitespace normalized)",
    (args, sep) => {
      const s = args.join(sep);
      const k = KernelArgs.parse(s);
      expect(k.toArray()).toEqual(args);
      expect(KernelArgs.parse(k.toString()).toArray()).toEqual(args);
    },
  );
});

describe("kargs.d", () => {
  it("parses kargs and match-architectures, rejects unknown keys and missing kargs", () => {
    expect(
      parseKargsToml('kargs = ["a=1", "b"]\nmatch-architectures = ["x86_64"]\n', "10-a.toml"),
    ).toEqual({ fileName: "10-a.toml", kargs: ["a=1", "b"], matchArchitectures: ["x86_64"] });
    expect(() => parseKargsToml('kargs = ["a"]\nfoo = 1\n', "x.toml")).toThrow(
      /unknown field `foo`/,
    );
    expect(() => parseKargsToml("match-architectures = []\n", "x.toml")).toThrow(
      /missing field `kargs`/,
    );
    expect(() => parseKargsToml("kargs = [1]\n", "x.toml")).toThrow(
      expect.objectContaining({ code: "PARSE" }),
    );
    expect(() => parseKargsToml("kargs = [\n", "x.toml")).toThrow(
      expect.objectContaining({ code: "PARSE" }),
    );
  });
  it("loads a directory in name order, filtered by architecture", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "kargsd-"));
    try {
      const d = path.join(root, "usr/lib/bootc/kargs.d");
      await mkdir(d, { recursive: true });
      await writeFile(path.join(d, "20-b.toml"), 'kargs = ["second"]\n');
      await writeFile(path.join(d, "10-a.toml"), 'kargs = ["first=1", "console=ttyS0"]\n');
      await writeFile(
        path.join(d, "30-arm.toml"),
        'kargs = ["armonly"]\nmatch-architectures = ["aarch64"]\n',
      );
      await writeFile(path.join(d, "README"), "not toml");
      expect((await loadKargsD(root, { arch: "x86_64" })).kargs).toEqual([
        "first=1",
        "console=ttyS0",
        "second",
      ]);
      expect((await loadKargsD(root, { arch: "aarch64" })).kargs).toEqual([
        "first=1",
        "console=ttyS0",
        "second",
        "armonly",
      ]);
      expect((await loadKargsD(path.join(root, "none"), { arch: "x86_64" })).kargs).toEqual([]);
      await writeFile(path.join(d, "40-bad.toml"), 'kargs = ["x"]\nextra = true\n');
      const err = await loadKargsD(root, { arch: "x86_64" }).catch((e) => e);
      expect(isImageModeError(err, "PARSE")).toBe(true);
      expect(err.data.fileName).toBe("40-bad.toml");
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
  it("kargsForArchitecture keeps file order", () => {
    expect(
      kargsForArchitecture(
        [
          { fileName: "b.toml", kargs: ["b"], matchArchitectures: null },
          { fileName: "a.toml", kargs: ["a"], matchArchitectures: null },
        ],
        "x86_64",
      ),
    ).toEqual(["a", "b"]);
  });
});
