#!/usr/bin/env node
// Regenerates index.d.ts and index.js (the napi-rs loader) from the Rust sources: `npm run build`.
// `node scripts/generate.mjs DIR` writes them into DIR instead (the test compares those with the
// checked-in files).
//
// It does what `napi build --platform --dts index.d.ts --js index.js` does, through @napi-rs/cli's
// API, except that cargo builds for the host without `--target`: the build shares the workspace's
// target/release with every other rtcast build instead of compiling all dependencies a second
// time under target/<triple>/.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { generateTypeDef, writeJsBinding } from '@napi-rs/cli'

const pkgDir = fileURLToPath(new URL('..', import.meta.url))
const outDir = path.resolve(process.argv[2] ?? pkgDir)
const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'))

const typeDefDir = mkdtempSync(path.join(tmpdir(), 'rtcast-node-typedef-'))
try {
  // napi-derive writes each item's TypeScript to NAPI_TYPE_DEF_TMP_FOLDER while it compiles the
  // crate; NAPI_FORCE_BUILD_<CRATE> (watched by napi-build) makes cargo recompile it.
  const cargo = spawnSync(process.env.CARGO || 'cargo', ['build', '--release', '--package', 'rtcast-node'], {
    cwd: path.resolve(pkgDir, '../..'),
    stdio: 'inherit',
    env: { ...process.env, NAPI_TYPE_DEF_TMP_FOLDER: typeDefDir, NAPI_FORCE_BUILD_RTCAST_NODE: String(Date.now()) },
  })
  if (cargo.status !== 0) throw new Error(`cargo build failed (${cargo.error?.message ?? `status ${cargo.status}`})`)
  const { exports, dts } = await generateTypeDef({ typeDefDir, cwd: pkgDir, declareBindingTarget: true })
  writeFileSync(path.join(outDir, 'index.d.ts'), dts)
  await writeJsBinding({
    platform: true,
    idents: exports,
    jsBinding: 'index.js',
    binaryName: pkg.napi.binaryName,
    packageName: pkg.name,
    version: pkg.version,
    outputDir: outDir,
    wasiFlavors: [],
  })
} finally {
  rmSync(typeDefDir, { recursive: true, force: true })
}
