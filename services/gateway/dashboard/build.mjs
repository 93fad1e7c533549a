// Bundles the dashboard into OUT (the gateway's static folder): index.html at its root,
// app.js and app.css under assets/. Deterministic: the same sources and lock give the same
// bytes (no hashes, no timestamps, no source maps), so `make dashboard-check` can diff.
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] ?? path.join(here, "../src/fluid_gateway/static"));

await rm(out, { recursive: true, force: true });
await mkdir(path.join(out, "assets"), { recursive: true });
await build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.js", style: "src/style.css" },
  outdir: path.join(out, "assets"),
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  legalComments: "eof",
  charset: "utf8",
  logLevel: "warning",
});
await copyFile(path.join(here, "src/index.html"), path.join(out, "index.html"));
console.log(`dashboard built into ${path.relative(process.cwd(), out) || "."}`);
