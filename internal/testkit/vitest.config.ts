import { defineProject } from "vitest/config";

export default defineProject({
  ssr: {
    resolve: { conditions: ["@imagemode/source", "module", "node", "development|production"] },
  },
  test: {
    name: "testkit",
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    environment: "node",
    testTimeout: 300_000,
    hookTimeout: 600_000,
  },
});
