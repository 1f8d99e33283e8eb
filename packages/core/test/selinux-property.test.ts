import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fc, test } from "@fast-check/vitest";
import { beforeAll, describe, expect } from "vitest";
import {
  compileFileContexts,
  type FileContextSpec,
  parseFileContexts,
  serializeFileContexts,
  type TreeEntryType,
} from "../src/index.js";
import { loadTestkit, matchpathcon, type Probe, type Testkit } from "./selinux-oracle.js";

const TYPES: TreeEntryType[] = ["file", "dir", "symlink", "chardev", "blockdev", "fifo", "socket"];

let tk: Testkit;
beforeAll(async () => {
  tk = await loadTestkit();
  tk.requireTool("matchpathcon");
});

const regexChar = fc.constantFrom(..."/ab.x-_0");
const spec = fc.record({
  regex: fc.oneof(
    fc.stringMatching(/^\/[a-z0-9._/-]{0,12}$/),
    fc
      .array(fc.oneof(regexChar, fc.constantFrom(".*", "(/.*)?", "[^/]+", "\\.", "?", "|")), {
        minLength: 1,
        maxLength: 8,
      })
      .map((p) => `/${p.join("")}`),
  ),
  type: fc.option(fc.constantFrom(...TYPES), { nil: null }),
  context: fc.option(fc.stringMatching(/^[a-z_]{1,8}:[a-z_]{1,8}:[a-z_]{1,8}:s0(:c[0-9]{1,3})?$/), {
    nil: null,
  }),
});

describe("file_contexts codec", () => {
  test.prop([fc.array(spec, { maxLength: 30 })])("serialize → parse round-trips", (specs) => {
    const parsed = parseFileContexts(serializeFileContexts(specs as FileContextSpec[]));
    expect(parsed.map(({ regex, type, context }) => ({ regex, type, context }))).toEqual(
      specs.map(({ regex, type, context }) => ({ regex, type, context })),
    );
  });
});

// Random small databases built from the constructs file_contexts use, against libselinux.
const piece = fc.constantFrom(
  "/a",
  "/b",
  "/ab",
  "/a\\.b",
  "/x",
  "(/.*)?",
  "/.*",
  "/[^/]*",
  "/[ab]+",
  "/a?b",
  "/(a|b)",
  "/a{1,2}",
  "(/a|/b)",
  ".*",
  "/a.b",
  "$",
);
const regex = fc
  .tuple(
    fc.array(piece, { minLength: 1, maxLength: 3 }),
    fc.option(fc.array(piece, { minLength: 1, maxLength: 2 }), { nil: undefined }),
  )
  .map(([left, right]) => {
    const l = left.join("");
    const head = l.startsWith("/") ? l : `/a${l}`;
    return right === undefined ? head : `${head}|${right.join("")}`;
  });
const line = fc.record({
  regex,
  type: fc.option(fc.constantFrom("--", "-d", "-l", "-c"), { nil: null }),
  none: fc.boolean(),
});
const pathArb = fc
  .tuple(
    fc.array(fc.constantFrom("a", "b", "ab", "a.b", "x", "aa", "axb"), {
      minLength: 1,
      maxLength: 3,
    }),
    fc.constantFrom("", "/", "//x", "\n"),
  )
  .map(([parts, tail]) => `/${parts.join("/")}${tail}`);

describe("file_contexts lookup vs matchpathcon on random databases", () => {
  test.prop(
    [
      fc.array(line, { minLength: 1, maxLength: 12 }),
      fc.uniqueArray(pathArb, { minLength: 5, maxLength: 25 }),
    ],
    { numRuns: 40 },
  )(
    "every lookup equals libselinux's",
    async (lines, paths) => {
      const text = lines
        .map(
          (l, i) =>
            `${l.regex}\t${l.type ?? ""}\t${l.none && i % 3 === 0 ? "<<none>>" : `u:r:t${i}:s0`}`,
        )
        .join("\n");
      const t = await tk.tempDir("selinux-prop-");
      try {
        const file = join(t.path, "file_contexts");
        await writeFile(file, `${text}\n`);
        const db = compileFileContexts({ fileContexts: `${text}\n` });
        const probes: Probe[] = paths.flatMap((path) => [
          { path, type: "file" as const },
          { path, type: "dir" as const },
        ]);
        const want = await matchpathcon(file, probes);
        const got = probes.map((p) => db.lookup(p.path, p.type));
        expect(got).toEqual(want);
      } finally {
        await t.cleanup();
      }
    },
    120_000,
  );
});
