import { defineProject } from "vitest/config";

export default defineProject({
  ssr: {
    resolve: { conditions: ["@imagemode/source", "module", "node", "development|production"] },
  },
  test: {
    name: "example-disk",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
