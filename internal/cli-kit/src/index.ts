/**
 * @imagemode/cli-kit: the glue every example CLI shares — progress rendering and the `main()`
 * wrapper that maps errors to exit statuses.
 */
export {
  type BarStyle,
  type ProgressMode,
  type ProgressRenderer,
  type ProgressRendererOptions,
  progressRenderer,
  type TextStream,
  warningLine,
} from "./progress.js";
export {
  type CliIo,
  type CliProgram,
  type ErrorStyle,
  type ReportOptions,
  type RunCliOptions,
  reportCliError,
  runCli,
} from "./run.js";
