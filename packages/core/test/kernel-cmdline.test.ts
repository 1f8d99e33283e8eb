import { describe, expect, it } from "vitest";
import { isImageModeError, splitKernelCommandLine } from "../src/index.js";

// Cases as the kernel's next_arg() reads /proc/cmdline: quotes group and stay in the text.
describe("splitKernelCommandLine", () => {
  it.each([
    [
      "root=UUID=1 rw  console=ttyS0,115200\tquiet",
      ["root=UUID=1", "rw", "console=ttyS0,115200", "quiet"],
    ],
    ['dyndbg="file foo.c +p" ro', ['dyndbg="file foo.c +p"', "ro"]],
    ['"a b"=c d', ['"a b"=c', "d"]],
    ["   ", []],
    ["", []],
  ])("splits %j", (line, want) => {
    expect(splitKernelCommandLine(line)).toEqual(want);
  });

  it("rejects an unterminated quote unless asked to be lenient", () => {
    let err: unknown;
    try {
      splitKernelCommandLine('a k="b c');
    } catch (e) {
      err = e;
    }
    expect(isImageModeError(err, "PARSE")).toBe(true);
    expect(splitKernelCommandLine('a k="b c', { strict: false })).toEqual(["a", 'k="b c']);
  });
});
