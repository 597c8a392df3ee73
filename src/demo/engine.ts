/** Where the demo and replay get their engine from. TEMPORARY: the stand-in until src/index.ts lands. */
export { createEngine } from "./tmp-engine.js";
