/**
 * Wasm imported as a compiled module, as Cloudflare Workers (`import m from "./x.wasm"`) and
 * Vercel Edge (`import m from "./x.wasm?module"`) provide it. Only the entries in this folder use it.
 */
declare module "*.wasm" {
  const module: WebAssembly.Module;
  export default module;
}

declare module "*.wasm?module" {
  const module: WebAssembly.Module;
  export default module;
}
