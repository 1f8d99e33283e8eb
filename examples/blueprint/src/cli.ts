/**
 * imagemode-blueprint: validate, plan and apply bootc-image-builder configs.
 *
 *   imagemode-blueprint validate FILE [--type qcow2] [--json]
 *   imagemode-blueprint plan FILE --etc DIR [--type qcow2] [--json]
 *   imagemode-blueprint apply FILE --root DIR [--etc-dir etc] [--type qcow2] [--json]
 *   imagemode-blueprint schema
 *
 * FILE is a config.toml / config.json, `-` (JSON on stdin), or a directory holding one of them.
 * Exit status: 0 valid / done, 1 the config has problems, otherwise core's exitCodeFor(code).
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  applyPlan,
  type Blueprint,
  blueprintJsonSchema,
  formatForFile,
  formatPlan,
  parseBlueprint,
  parseConfigFiles,
  planCustomizations,
  readEtcFiles,
  type ValidationIssue,
  validateBlueprint,
} from "@imagemode/blueprint";
import { progressRenderer, reportCliError, warningLine } from "@imagemode/cli-kit";
import { type ProgressListener, toImageModeError } from "@imagemode/core";
import { Command } from "commander";

/** Exit status when the config parses but has problems. */
const EXIT_INVALID = 1;

class InvalidConfig extends Error {
  constructor(readonly issues: ValidationIssue[]) {
    super(`${issues.length} problem(s) in the config`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Reads and parses FILE (a file, `-`, or a directory with config.toml / config.json). */
async function loadConfig(file: string): Promise<unknown> {
  if (file === "-") return parseBlueprint(await readStdin(), "json", { file: "<stdin>" });
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(file);
  } catch (e) {
    throw toImageModeError(e, "blueprint.cli.read", { path: file });
  }
  if (st.isDirectory()) {
    const names = (await readdir(file))
      .filter((n) => n === "config.toml" || n === "config.json")
      .sort((a, b) => b.localeCompare(a));
    const files = await Promise.all(
      names.map(async (n) => ({
        path: join(file, n),
        text: await readFile(join(file, n), "utf8"),
      })),
    );
    const value = parseConfigFiles(files);
    if (value === undefined) return {};
    return value;
  }
  const format = formatForFile(file);
  return parseBlueprint(await readFile(file, "utf8"), format, { file });
}

async function loadValid(file: string, imageType: string): Promise<Blueprint> {
  const r = validateBlueprint(await loadConfig(file), { imageType });
  if (!r.ok) throw new InvalidConfig(r.issues);
  return r.blueprint;
}

function progressFor(json: boolean): ProgressListener {
  return progressRenderer(json ? "jsonl" : "none", process.stderr, {
    line: (e) =>
      e.type === "step" ? `[${e.step}/${e.steps ?? "?"}] ${e.description ?? ""}` : warningLine(e),
  }).listener;
}

function fail(err: unknown, json: boolean): void {
  if (err instanceof InvalidConfig) {
    if (json) process.stdout.write(`${JSON.stringify(err.issues, null, 2)}\n`);
    else
      for (const i of err.issues) process.stdout.write(`${i.path || "(config)"}: ${i.message}\n`);
    process.exitCode = EXIT_INVALID;
    return;
  }
  process.exitCode = reportCliError(err, {
    name: "imagemode-blueprint",
    op: "blueprint.cli",
    json,
    errors: { textWithJson: false },
  });
}

const program = new Command()
  .name("imagemode-blueprint")
  .description("validate, plan and apply bootc-image-builder configs (config.toml / config.json)")
  .showHelpAfterError();

program
  .command("validate")
  .argument(
    "<file>",
    "config.toml, config.json, - (JSON on stdin), or a directory with one of them",
  )
  .option("-t, --type <type>", "image type the config is for", "qcow2")
  .option("--json", "print the issues as a JSON array")
  .description("check a config; print every problem (path: message)")
  .action(async (file: string, o: { type: string; json?: boolean }) => {
    try {
      await loadValid(file, o.type);
      if (o.json) process.stdout.write("[]\n");
      else process.stdout.write(`${file}: valid for ${o.type}\n`);
    } catch (e) {
      fail(e, Boolean(o.json));
    }
  });

program
  .command("plan")
  .argument("<file>", "the config")
  .requiredOption(
    "--etc <dir>",
    "the image's /etc (holding passwd, group, shadow, gshadow, login.defs)",
  )
  .option("-t, --type <type>", "image type", "qcow2")
  .option("--json", "print the plan as JSON")
  .description("show what the config changes in an image")
  .action(async (file: string, o: { etc: string; type: string; json?: boolean }) => {
    try {
      const bp = await loadValid(file, o.type);
      const plan = planCustomizations(bp, await readEtcFiles(o.etc, { etcDir: "." }));
      process.stdout.write(o.json ? `${JSON.stringify(plan, null, 2)}\n` : formatPlan(plan));
    } catch (e) {
      fail(e, Boolean(o.json));
    }
  });

program
  .command("apply")
  .argument("<file>", "the config")
  .requiredOption("--root <dir>", "the unpacked image root to change")
  .option("--etc-dir <dir>", "where the account files are under the root (etc or usr/etc)", "etc")
  .option("-t, --type <type>", "image type", "qcow2")
  .option("--json", "print the result as JSON (progress as JSON lines on stderr)")
  .description("apply the config to an unpacked image root")
  .action(
    async (file: string, o: { root: string; etcDir: string; type: string; json?: boolean }) => {
      try {
        const bp = await loadValid(file, o.type);
        const plan = planCustomizations(bp, await readEtcFiles(o.root, { etcDir: o.etcDir }), {
          etcDir: o.etcDir,
        });
        const result = await applyPlan(plan, o.root, { onProgress: progressFor(Boolean(o.json)) });
        if (o.json) process.stdout.write(`${JSON.stringify({ plan, result }, null, 2)}\n`);
        else {
          process.stdout.write(formatPlan(plan));
          process.stdout.write(
            `applied ${result.written.length} edit(s) to ${o.root}${result.chowned ? "" : " (owners not set: not running as root; see --json for the owners the image needs)"}\n`,
          );
        }
      } catch (e) {
        fail(e, Boolean(o.json));
      }
    },
  );

program
  .command("schema")
  .description("print the JSON Schema of the config")
  .action(() => {
    process.stdout.write(`${JSON.stringify(blueprintJsonSchema(), null, 2)}\n`);
  });

await program.parseAsync(process.argv);
