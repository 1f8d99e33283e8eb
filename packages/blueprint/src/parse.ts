/**
 * Reading and writing config files: TOML (smol-toml) and JSON, the legacy
 * `{"blueprint": {…}}` JSON wrapper, and the one-config-only rule.
 */
import { invalidArgument, parseError } from "@imagemode/core";
import { parse as parseToml, stringify as stringifyToml, TomlError } from "smol-toml";
import type { Blueprint } from "./model.js";

/** The two config formats. */
export type ConfigFormat = "toml" | "json";

/** Options of {@link parseBlueprint}. */
export interface ParseOptions {
  /** The file name used in error messages and in the error's `data.file`. */
  file?: string;
}

function lineColumnAt(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const lines = before.split("\n");
  return { line: lines.length, column: (lines[lines.length - 1]?.length ?? 0) + 1 };
}

function jsonErrorPosition(text: string, message: string): { line: number; column: number } {
  const lc = /line (\d+) column (\d+)/.exec(message);
  if (lc) return { line: Number(lc[1]), column: Number(lc[2]) };
  const pos = /position (\d+)/.exec(message);
  if (pos) return lineColumnAt(text, Number(pos[1]));
  return lineColumnAt(text, text.length);
}

/**
 * Parses the text of a config file into a plain value (not yet checked: pass it to
 * `validateBlueprint`). A JSON document of the legacy form `{"blueprint": {…}}` is unwrapped.
 *
 * @throws ImageModeError `PARSE` on a syntax error, with `data: { file, line, column }` and a
 *   message beginning `file:line:column:`.
 */
export function parseBlueprint(
  text: string,
  format: ConfigFormat,
  options: ParseOptions = {},
): unknown {
  const file = options.file ?? `config.${format}`;
  if (format === "toml") {
    try {
      return parseToml(text);
    } catch (e) {
      if (e instanceof TomlError) {
        const reason =
          e.message.split("\n")[0]?.replace(/^Invalid TOML document: /, "") ?? "invalid TOML";
        throw parseError(`${file}:${e.line}:${e.column}: ${reason}`, {
          op: "blueprint.parse",
          data: { file, line: e.line, column: e.column, format },
          cause: e,
        });
      }
      throw parseError(`${file}: ${(e as Error).message}`, {
        op: "blueprint.parse",
        data: { file, format },
        cause: e,
      });
    }
  }
  if (format !== "json")
    throw invalidArgument(`unknown config format ${JSON.stringify(format)}`, {
      op: "blueprint.parse",
    });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    const { line, column } = jsonErrorPosition(text, message);
    throw parseError(`${file}:${line}:${column}: ${message}`, {
      op: "blueprint.parse",
      data: { file, line, column, format },
      cause: e,
    });
  }
  if (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.hasOwn(value, "blueprint")
  ) {
    const keys = Object.keys(value);
    if (keys.length !== 1) {
      throw parseError(
        `${file}: the legacy {"blueprint": …} wrapper must be the only key, found also ${keys.filter((k) => k !== "blueprint").join(", ")}`,
        {
          op: "blueprint.parse",
          data: { file, format },
        },
      );
    }
    return (value as { blueprint: unknown }).blueprint;
  }
  return value;
}

/** The format a file name implies (`.toml` or `.json`). */
export function formatForFile(file: string): ConfigFormat {
  if (file.endsWith(".toml")) return "toml";
  if (file.endsWith(".json")) return "json";
  throw invalidArgument(`unsupported file extension for ${JSON.stringify(file)}`, {
    op: "blueprint.parse",
    data: { file },
  });
}

/**
 * Parses the one config among `files` (e.g. the `config.toml` and `config.json` found in a
 * directory). More than one → `INVALID_ARGUMENT` with bootc-image-builder's message
 * `found "config.json" and also "config.toml", only a single one is supported`.
 * None → `undefined`.
 */
export function parseConfigFiles(files: ReadonlyArray<{ path: string; text: string }>): unknown {
  if (files.length > 1) {
    const base = (p: string) => p.split("/").pop() ?? p;
    const first = files[0]?.path ?? "";
    const second = files[1]?.path ?? "";
    throw invalidArgument(
      `found ${JSON.stringify(base(second))} and also ${JSON.stringify(base(first))}, only a single one is supported`,
      {
        op: "blueprint.parse",
        data: { files: files.map((f) => f.path) },
      },
    );
  }
  const only = files[0];
  if (!only) return undefined;
  return parseBlueprint(only.text, formatForFile(only.path), { file: only.path });
}

/** Removes `undefined` members so both serializers see the same data. */
function pruned(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(pruned);
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = pruned(v);
    return out;
  }
  return value;
}

/** Writes a blueprint as `config.toml` or `config.json` text (parsing it back gives the same model). */
export function serializeBlueprint(blueprint: Blueprint, format: ConfigFormat): string {
  const data = pruned(blueprint) as Record<string, unknown>;
  if (format === "toml") return stringifyToml(data);
  return `${JSON.stringify(data, null, 2)}\n`;
}
