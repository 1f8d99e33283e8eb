import { defineProject } from "vitest/config";

export default defineProject({
  ssr: {
    resolve: { conditions: ["@imagemode/source", "module", "node", "development|production"] },
  },
  test: {
    name: "cli-kit",
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
