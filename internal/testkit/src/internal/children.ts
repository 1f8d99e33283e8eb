import type { ChildProcess } from "node:child_process";

/**
 * Child processes (registries, QEMU) that must not outlive this process. The set is
 * process-wide on purpose: a process `exit` handler can only reach process-wide state.
 */
const live = new Set<ChildProcess>();
let hooked = false;

function killAll(): void {
  for (const child of live) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

/** Tracks a child so that it is killed when this process exits, whatever the reason. */
export function track(child: ChildProcess): void {
  if (!hooked) {
    hooked = true;
    process.on("exit", killAll);
  }
  live.add(child);
  child.once("exit", () => live.delete(child));
}
