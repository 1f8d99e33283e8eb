export * from "./commit.js";
export * from "./gvariant.js";
export * from "./mutable-tree.js";
export * from "./objects.js";
export * from "./repo.js";
