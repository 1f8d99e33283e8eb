export { MediaType } from "@imagemode/core";
export * from "../../src/index.js";
