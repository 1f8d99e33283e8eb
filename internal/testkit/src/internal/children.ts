import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";

/**
 * Child processes (registries, QEMU) that must not outlive this process. The set is
 * process-wide on purpose: a process `exit` handler can only reach process-wide state.
 */
const live = new Set<ChildProcess>();
let hooked = false;

function killAll(): void {
  for (const child of live) {
    child.stdin?.destroy(); // the guard sees EOF and stops the program
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
}

/** Tracks a child so that it is killed when this process exits normally. */
function track(child: ChildProcess): void {
  if (!hooked) {
    hooked = true;
    process.on("exit", killAll);
  }
  live.add(child);
  child.once("exit", () => live.delete(child));
}

// The program runs in the background of a small sh; a guard subshell blocks reading the
// pipe whose write end only this Node process holds. When that pipe closes — stop() ends
// it, or this process dies in any way, even by SIGKILL — the guard sends SIGTERM, then
// SIGKILL. (PR_SET_PDEATHSIG via `setpriv --pdeathsig` proved unreliable with Node as the
// parent: the signal follows the thread that forked, not the process.)
const GUARD = `exec 3<&0 0</dev/null
"$@" &
pid=$!
( read -r _ <&3; kill -TERM "$pid" 2>/dev/null; sleep 3; kill -KILL "$pid" 2>/dev/null ) &
guard=$!
exec 3<&-
wait "$pid"
status=$?
kill "$guard" 2>/dev/null
exit "$status"`;

/**
 * Spawns a long-running program that cannot outlive this process (see GUARD). Its stdout
 * and stderr go where `output` says; stdin is the guard pipe. Stop it with {@link stopGuarded}.
 */
export function spawnGuarded(
  cmd: string,
  args: readonly string[],
  output: { stdout: "pipe" | "ignore" | number; stderr: "pipe" | "ignore" | number },
): ChildProcess {
  const child = spawn("sh", ["-c", GUARD, "guard", cmd, ...args], {
    stdio: ["pipe", output.stdout, output.stderr],
  });
  child.stdin?.on("error", () => {});
  track(child);
  return child;
}

/** Stops a {@link spawnGuarded} program (SIGTERM, SIGKILL after 3 s) and waits for it. */
export async function stopGuarded(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.stdin?.end();
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}
