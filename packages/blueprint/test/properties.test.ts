import { readFileSync } from "node:fs";
import { fc, test } from "@fast-check/vitest";
import { isImageModeError } from "@imagemode/core";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import {
  type Blueprint,
  blueprintJsonSchema,
  type ConfigFormat,
  parseBlueprint,
  parseColonFile,
  parseDataSize,
  parseLoginDefs,
  serializeBlueprint,
  serializeColonFile,
  serializeLoginDefs,
  validateBlueprint,
} from "../src/index.js";

const accountName = fc
  .tuple(
    fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz_"),
    fc.string({ unit: fc.constantFrom(..."abcxyz019_-"), maxLength: 20 }),
  )
  .map(([a, b]) => a + b);
const safeText = fc.string({
  unit: fc.constantFrom(..."abc XYZ,.=/-_0123456789éü"),
  maxLength: 30,
});
const id = fc.integer({ min: 0, max: 4294967294 });
const KEYS = [
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a@b",
  "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg= c@d",
];

const userArb = fc.record(
  {
    name: accountName,
    description: safeText,
    password: fc.oneof(
      safeText.filter((s) => s !== ""),
      fc.constant("$6$abc$0123456789abcdef"),
    ),
    key: fc.constantFrom(...KEYS),
    home: fc.constantFrom("/var/home/x", "/srv/widget"),
    shell: fc.constantFrom("/bin/bash", "/usr/bin/zsh"),
    groups: fc.uniqueArray(accountName, { maxLength: 3 }),
    uid: id,
    gid: id,
    expiredate: fc.integer({ min: 0, max: 100000 }),
    force_password_reset: fc.boolean(),
  },
  { requiredKeys: ["name"] },
);

const mountpoint = fc.oneof(
  fc.constantFrom("/", "/boot"),
  fc
    .stringMatching(/^[a-z][a-z0-9]{0,8}$/)
    .filter(
      (s) => !["home", "lock", "mail", "mnt", "roothome", "run", "srv", "usrlocal"].includes(s),
    )
    .map((s) => `/var/${s}`),
);

const blueprintArb: fc.Arbitrary<Blueprint> = fc
  .record(
    {
      name: safeText,
      description: safeText,
      version: fc.constantFrom("0.0.1", "1.2.3"),
      customizations: fc.record(
        {
          user: fc.uniqueArray(userArb, { selector: (u) => u.name, maxLength: 3 }).map((us) => {
            const seen = new Set<number>();
            return us.map((u) => {
              if (u.uid === undefined || !seen.has(u.uid)) {
                if (u.uid !== undefined) seen.add(u.uid);
                return u;
              }
              const { uid: _u, ...rest } = u;
              return rest;
            });
          }),
          group: fc
            .uniqueArray(fc.record({ name: accountName, gid: id }, { requiredKeys: ["name"] }), {
              selector: (g) => g.name,
              maxLength: 3,
            })
            .map((gs) => {
              const seen = new Set<number>();
              return gs.map((g) => {
                if (g.gid === undefined || !seen.has(g.gid)) {
                  if (g.gid !== undefined) seen.add(g.gid);
                  return g;
                }
                return { name: g.name };
              });
            }),
          kernel: fc.record({
            append: fc.constantFrom("quiet", "console=ttyS0 mitigations=auto,nosmt", 'a="b c"'),
          }),
          filesystem: fc.uniqueArray(
            fc.record({ mountpoint, minsize: fc.integer({ min: 1, max: 2 ** 50 }) }),
            { selector: (f) => f.mountpoint, maxLength: 3 },
          ),
          directories: fc.constant([
            { path: "/etc/foo", mode: "0750", user: "root", group: 0, ensure_parents: true },
          ]),
          files: fc.constant([{ path: "/etc/foo/bar", mode: "0640", data: 'line 1\nline "2"\n' }]),
          sshd: fc.record({
            password_authentication: fc.boolean(),
            client_alive_interval: fc.integer({ min: 0, max: 3600 }),
          }),
        },
        { requiredKeys: [] },
      ),
    },
    { requiredKeys: [] },
  )
  .map((bp) => bp as Blueprint);

const schema = new Ajv2020({ strict: true }).compile(blueprintJsonSchema());

describe("round trips", () => {
  test.prop([blueprintArb, fc.constantFrom<ConfigFormat>("toml", "json")], { numRuns: 150 })(
    "random valid blueprints survive serialize → parse → validate",
    (bp, format) => {
      const first = validateBlueprint(bp, { imageType: "qcow2" });
      expect(first.ok ? "ok" : first.issues).toBe("ok");
      expect(schema(bp) ? [] : schema.errors).toEqual([]);
      const back = validateBlueprint(parseBlueprint(serializeBlueprint(bp, format), format), {
        imageType: "qcow2",
      });
      expect(back).toEqual({ ok: true, blueprint: bp });
    },
  );

  test.prop([fc.string({ maxLength: 400 })])(
    "colon files: serialize(parse(text)) === text",
    (text) => {
      expect(serializeColonFile(parseColonFile(text))).toBe(text);
    },
  );

  test.prop([fc.string({ maxLength: 400 })])(
    "login.defs: serialize(parse(text)) === text",
    (text) => {
      expect(serializeLoginDefs(parseLoginDefs(text))).toBe(text);
    },
  );

  it("round-trips this host's account files (written by the shadow tools) byte for byte", () => {
    for (const f of ["passwd", "group", "shadow", "gshadow"]) {
      const text = readFileSync(`/etc/${f}`, "utf8");
      expect(serializeColonFile(parseColonFile(text))).toBe(text);
    }
    const defs = readFileSync("/etc/login.defs", "utf8");
    expect(serializeLoginDefs(parseLoginDefs(defs))).toBe(defs);
  });
});

describe("junk never throws anything but a typed error", () => {
  test.prop(
    [
      fc.anything({
        withNullPrototype: true,
        withBigInt: true,
        withDate: true,
        withMap: true,
        withSet: true,
      }),
    ],
    { numRuns: 300 },
  )("validateBlueprint returns issues, never throws", (value) => {
    const r = validateBlueprint(value, { imageType: "qcow2" });
    if (!r.ok) for (const i of r.issues) expect(typeof i.message).toBe("string");
  });

  test.prop([fc.string({ maxLength: 300 }), fc.constantFrom<ConfigFormat>("toml", "json")], {
    numRuns: 300,
  })("parseBlueprint throws only PARSE errors", (text, format) => {
    try {
      validateBlueprint(parseBlueprint(text, format));
    } catch (e) {
      expect(isImageModeError(e, "PARSE")).toBe(true);
    }
  });

  test.prop([fc.oneof(fc.string(), fc.integer(), fc.double())])(
    "parseDataSize throws only INVALID_ARGUMENT",
    (v) => {
      try {
        const n = parseDataSize(v);
        expect(Number.isSafeInteger(n) && n >= 0).toBe(true);
      } catch (e) {
        expect(isImageModeError(e, "INVALID_ARGUMENT")).toBe(true);
      }
    },
  );
});
