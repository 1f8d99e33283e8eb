import { defineProject } from "vitest/config";

export default defineProject({
  ssr: {
    resolve: { conditions: ["@imagemode/source", "module", "node", "development|production"] },
  },
  test: {
    name: "example-image-builder",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // every file boots VMs: one file at a time on a 2-core machine
    fileParallelism: false,
  },
});
