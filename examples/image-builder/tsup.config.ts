import { defineConfig } from "tsup";

// The workspace packages are bundled from their sources (the `@imagemode/source` condition), so
// `bin/imagemode-build.js` runs without building every package first; npm dependencies stay external.
export default defineConfig({
  entry: ["src/cli.ts"],
  format: ["esm"],
  dts: false,
  sourcemap: true,
  clean: true,
  target: "node20",
  noExternal: [/^@imagemode\//],
  esbuildOptions(options) {
    options.conditions = ["@imagemode/source", "import", "module", "node"];
  },
});
