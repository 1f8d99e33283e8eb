import { describe, expect, it } from "vitest";
import { backoffDelay, codeForHttp, parseOciErrors, parseRetryAfter } from "../src/index.js";

describe("HTTP boundary", () => {
  it("maps HTTP and OCI codes once", () => {
    expect(codeForHttp(401)).toBe("UNAUTHORIZED");
    expect(codeForHttp(403)).toBe("DENIED");
    expect(codeForHttp(404)).toBe("NOT_FOUND");
    expect(codeForHttp(400, ["MANIFEST_UNKNOWN"])).toBe("NOT_FOUND");
    expect(codeForHttp(400, ["BLOB_UNKNOWN"])).toBe("NOT_FOUND");
    expect(codeForHttp(400, ["NAME_UNKNOWN"])).toBe("NOT_FOUND");
    expect(codeForHttp(400, ["DIGEST_INVALID"])).toBe("DIGEST_MISMATCH");
    expect(codeForHttp(503)).toBe("REMOTE");
    expect(codeForHttp(429)).toBe("REMOTE");
  });
  it("reads OCI error bodies", () => {
    expect(
      parseOciErrors(
        '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}',
      ),
    ).toEqual([{ code: "MANIFEST_UNKNOWN", message: "manifest unknown" }]);
    expect(parseOciErrors("<html>")).toEqual([]);
  });
  it("parses Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("3")).toBe(3000);
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("soon")).toBeUndefined();
  });
  it("backs off exponentially with jitter, capped", () => {
    expect(backoffDelay(0, { random: () => 0.5 })).toBe(200);
    expect(backoffDelay(3, { random: () => 0.5 })).toBe(1600);
    expect(backoffDelay(3, { random: () => 0 })).toBe(800);
    expect(backoffDelay(30, { random: () => 0.99, maxDelayMs: 5000 })).toBe(5000);
  });
});
