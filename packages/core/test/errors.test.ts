import { describe, expect, it } from "vitest";
import {
  ERROR_CODES,
  exitCodeFor,
  ImageModeError,
  invalidArgument,
  isImageModeError,
  toImageModeError,
} from "../src/index.js";

describe("errors", () => {
  it("carries code, op, data and cause", () => {
    const cause = new Error("low");
    const e = new ImageModeError("NOT_FOUND", "no such blob", {
      op: "oci.fetch.blob",
      data: { digest: "x" },
      cause,
    });
    expect(e.code).toBe("NOT_FOUND");
    expect(e.op).toBe("oci.fetch.blob");
    expect(e.data).toEqual({ digest: "x" });
    expect(e.cause).toBe(cause);
    expect(JSON.parse(JSON.stringify(e))).toEqual({
      name: "ImageModeError",
      code: "NOT_FOUND",
      message: "no such blob",
      op: "oci.fetch.blob",
      data: { digest: "x" },
    });
  });

  it("is recognised by brand, also across copies of the class, and filtered by code", () => {
    const e = invalidArgument("bad ref");
    expect(isImageModeError(e)).toBe(true);
    expect(isImageModeError(e, "INVALID_ARGUMENT", "PARSE")).toBe(true);
    expect(isImageModeError(e, "NOT_FOUND")).toBe(false);
    // A structurally identical error from another copy of core carries the same global brand.
    const foreign = Object.assign(new Error("x"), { code: "PARSE" });
    Object.defineProperty(foreign, Symbol.for("@imagemode/core.ImageModeError"), { value: true });
    expect(isImageModeError(foreign, "PARSE")).toBe(true);
    expect(isImageModeError(new Error("plain"))).toBe(false);
    expect(isImageModeError({ code: "PARSE" })).toBe(false);
    expect(isImageModeError(null)).toBe(false);
  });

  it("maps errno codes once, at the boundary", async () => {
    const fs = await import("node:fs/promises");
    const err = await fs.readFile("/nonexistent/imagemode").catch((e: unknown) => e);
    const m = toImageModeError(err, "test.read");
    expect(m.code).toBe("NOT_FOUND");
    expect(m.op).toBe("test.read");
    expect(m.data.errno).toBe("ENOENT");
    expect(m.data.path).toBe("/nonexistent/imagemode");
    expect(toImageModeError(Object.assign(new Error("x"), { code: "EACCES" })).code).toBe("DENIED");
    expect(toImageModeError(Object.assign(new Error("x"), { code: "ENOSPC" })).code).toBe("HOST");
    expect(toImageModeError(new DOMException("aborted", "AbortError")).code).toBe("ABORTED");
    expect(toImageModeError("weird").code).toBe("INTERNAL");
    const already = invalidArgument("same");
    expect(toImageModeError(already)).toBe(already);
  });

  it("gives every code an exit status, non-zero", () => {
    for (const c of ERROR_CODES) expect(exitCodeFor(c)).toBeGreaterThan(0);
    expect(exitCodeFor("INVALID_ARGUMENT")).toBe(2);
  });
});
