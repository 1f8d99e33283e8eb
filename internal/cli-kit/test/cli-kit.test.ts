import { ImageModeError } from "@imagemode/core";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { progressRenderer, reportCliError, runCli, type TextStream } from "../src/index.js";

function sink(isTTY = false): TextStream & { text: string } {
  const s = {
    text: "",
    isTTY,
    write(chunk: string) {
      s.text += chunk;
      return true;
    },
  };
  return s;
}

describe("progressRenderer", () => {
  it("jsonl writes core's JSON lines", () => {
    const out = sink();
    const r = progressRenderer("jsonl", out);
    r.listener({ type: "start", task: "t", total: 3 });
    r.listener({ type: "warn", task: "t", message: "careful" });
    r.stop();
    const lines = out.text
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ type: "start", task: "t", total: 3 });
    expect(typeof lines[0].ts).toBe("string");
    expect(lines[1]).toMatchObject({ type: "warn", message: "careful" });
  });

  it("none writes warnings only by default, or the lines asked for", () => {
    const out = sink();
    const r = progressRenderer("none", out);
    r.listener({ type: "start", task: "t", total: 3 });
    r.listener({ type: "bytes", task: "t", done: 1 });
    r.listener({ type: "warn", task: "t", message: "careful" });
    expect(out.text).toBe("warning: careful\n");

    const out2 = sink();
    const r2 = progressRenderer("none", out2, {
      line: (e) => (e.type === "step" ? `[${e.step}/${e.steps}] ${e.description}` : undefined),
    });
    r2.listener({ type: "step", task: "t", step: 1, steps: 2, description: "first" });
    r2.listener({ type: "warn", task: "t", message: "dropped" });
    expect(out2.text).toBe("[1/2] first\n");
  });

  it("bar draws bars (non-TTY output on) and logs warnings above them at the next redraw", async () => {
    const out = sink();
    const r = progressRenderer("bar", out, {
      bar: { format: "{name} {value}/{total}", options: { noTTYOutput: true, notTTYSchedule: 10 } },
    });
    r.listener({ type: "start", task: "copy", id: "blob1", total: 10 });
    r.listener({ type: "warn", task: "copy", message: "slow" });
    r.listener({ type: "done", task: "copy", id: "blob1" });
    await new Promise((ok) => setTimeout(ok, 100));
    r.stop();
    r.stop(); // idempotent
    expect(out.text).toContain("warning: slow\n");
    expect(out.text).toContain("blob1 10/10");
  });
});

describe("runCli", () => {
  function program(action: () => void | Promise<void>): Command {
    const p = new Command("x").exitOverride().configureOutput({
      writeOut: () => {},
      writeErr: () => {},
    });
    p.command("go").option("--json").action(action);
    return p;
  }

  it("maps success, help and usage errors", async () => {
    const io = { stdout: sink(), stderr: sink() };
    const base = { name: "imagemode-x", io, status: () => 0 };
    expect(await runCli({ ...base, build: () => program(() => {}), argv: ["go"] })).toBe(0);
    expect(await runCli({ ...base, build: () => program(() => {}), argv: ["--help"] })).toBe(0);
    expect(await runCli({ ...base, build: () => program(() => {}), argv: ["go", "--nope"] })).toBe(
      2,
    );
    expect(io.stdout.text + io.stderr.text).toBe("");
  });

  it("prints ImageModeErrors and maps their code with exitCodeFor", async () => {
    const io = { stdout: sink(), stderr: sink() };
    const fail = () => {
      throw new ImageModeError("NOT_FOUND", "no such ref", { op: "x.go" });
    };
    const code = await runCli({
      name: "imagemode-x",
      io,
      build: () => program(fail),
      argv: ["go"],
    });
    expect(code).toBe(3);
    expect(io.stderr.text).toBe("imagemode-x: no such ref\n");
    expect(io.stdout.text).toBe("");

    const io2 = { stdout: sink(), stderr: sink() };
    const code2 = await runCli({
      name: "imagemode-x",
      io: io2,
      build: () => program(fail),
      argv: ["go", "--json"],
    });
    expect(code2).toBe(3);
    expect(JSON.parse(io2.stdout.text)).toMatchObject({
      error: { code: "NOT_FOUND", message: "no such ref" },
    });
    expect(io2.stdout.text).toContain("\n  "); // indented by default
    expect(io2.stderr.text).toBe("imagemode-x: no such ref\n");
  });

  it("wraps foreign errors with the CLI's op; error style options", () => {
    const io = { stdout: sink(), stderr: sink() };
    const code = reportCliError(new Error("boom"), {
      name: "imagemode-x",
      op: "x.cli",
      json: true,
      io,
      errors: { json: "stderr", indent: 0, label: "error", textWithJson: false },
    });
    expect(code).toBeGreaterThan(0);
    expect(io.stdout.text).toBe("");
    expect(io.stderr.text.split("\n")).toHaveLength(2); // one line + final newline
    expect(JSON.parse(io.stderr.text).error).toMatchObject({ message: "boom", op: "x.cli" });

    const io2 = { stdout: sink(), stderr: sink() };
    reportCliError(new Error("boom"), {
      name: "imagemode-x",
      json: false,
      io: io2,
      errors: { label: "error" },
    });
    expect(io2.stderr.text).toBe("error: boom\n");
  });
});
