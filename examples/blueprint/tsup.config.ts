import { defineConfig } from "tsup";

// The CLI is bundled with its workspace dependencies (read from their TypeScript source through
// the "@imagemode/source" condition), so `bin/imagemode-blueprint.js` runs after building this
// package alone.
export default defineConfig({
  entry: ["src/cli.ts"],
  format: ["esm"],
  dts: false,
  sourcemap: true,
  clean: true,
  target: "node20",
  platform: "node",
  noExternal: [/.*/],
  banner: {
    js: 'import { createRequire as __imCreateRequire } from "node:module"; const require = __imCreateRequire(import.meta.url);',
  },
  esbuildOptions(options) {
    options.conditions = ["@imagemode/source", "module", "node"];
  },
});
