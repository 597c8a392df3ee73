/** Where the demo and replay get their engine from: the package's own Node entry. */
export { createEngine } from "../index.js";
