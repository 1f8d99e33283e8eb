import { MemoryTarget } from "@imagemode/core";
import { blobStoreConformance } from "../src/index.js";

blobStoreConformance("MemoryTarget", async () => ({ store: new MemoryTarget() }));
