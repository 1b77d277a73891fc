#!/usr/bin/env node
// The package's `install` script: builds the native module from source with cargo (there is no
// prebuilt binary to download) and puts it where the napi-rs loader (index.js) looks for it,
// `rtcast.<platform>-<arch>[-<abi>].node` next to this package's package.json.
//
// The crate is a member of the rtcast Cargo workspace (../../Cargo.toml), so the build shares the
// workspace's one `target/` directory (or $CARGO_TARGET_DIR) with every other rtcast build: a
// machine that built rtcast before only compiles this small crate (seconds), a fresh one builds
// the WebRTC stack and openh264 too (minutes). `npm install <path to bindings/node>` links this
// folder into node_modules, so the workspace is found; a copy of the package outside the
// repository (`--install-links`, a tarball) needs RTCAST_SOURCE_DIR=<rtcast checkout>.
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const pkgDir = path.resolve(__dirname, '..')

function fail(message) {
  console.error(`rtcast: ${message}`)
  process.exit(1)
}

function isWorkspace(dir) {
  const manifest = path.join(dir, 'Cargo.toml')
  return (
    fs.existsSync(manifest) &&
    /^\[workspace\]/m.test(fs.readFileSync(manifest, 'utf8')) &&
    fs.existsSync(path.join(dir, 'bindings', 'node', 'Cargo.toml'))
  )
}

function findWorkspace() {
  const candidates = [process.env.RTCAST_SOURCE_DIR, path.resolve(fs.realpathSync(pkgDir), '../..')]
  for (const dir of candidates) {
    if (dir && isWorkspace(dir)) return dir
  }
  fail(
    `cannot find the rtcast sources to build from (looked at ${candidates.filter(Boolean).join(', ')}).\n` +
      'Install from a checkout of the repository (npm install /path/to/rtcast/bindings/node, which\n' +
      'links the folder), or set RTCAST_SOURCE_DIR to the checkout.',
  )
}

// The same file name the napi-rs loader (index.js) tries first for this platform.
function bindingFileName() {
  const { platform, arch } = process
  let abi = ''
  if (platform === 'linux') {
    const glibc = process.report?.getReport?.().header?.glibcVersionRuntime
    abi = glibc ? '-gnu' : '-musl'
    if (arch === 'arm') abi = glibc ? '-gnueabihf' : '-musleabihf'
  } else if (platform === 'win32') {
    abi = '-msvc'
  }
  return `rtcast.${platform}-${arch}${abi}.node`
}

function build() {
  const workspace = findWorkspace()
  const cargo = process.env.CARGO || 'cargo'
  const manifest = path.join(workspace, 'bindings', 'node', 'Cargo.toml')
  console.error(`rtcast: building the native module with ${cargo} in ${workspace} (minutes on a fresh machine)`)
  const result = spawnSync(
    cargo,
    ['build', '--release', '--package', 'rtcast-node', '--message-format=json-render-diagnostics'],
    { cwd: workspace, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 256 * 1024 * 1024 },
  )
  if (result.error) {
    fail(`cannot run ${cargo} (${result.error.message}); install Rust from https://rustup.rs`)
  }
  if (result.status !== 0) fail(`cargo build failed (exit status ${result.status}); see above`)
  let library
  for (const line of result.stdout.toString().split('\n')) {
    if (!line.startsWith('{')) continue
    const msg = JSON.parse(line)
    // The cdylib of this crate (its target is named `rtcast_node`); reported even when fresh.
    if (msg.reason === 'compiler-artifact' && msg.target?.kind?.includes('cdylib') && msg.manifest_path === manifest) {
      library = msg.filenames.find((f) => /\.(so|dylib|dll)$/.test(f))
    }
  }
  if (!library) fail('cargo did not report the rtcast-node library it built')
  // Copy then rename: a process that has the previous module loaded keeps its mapping intact.
  const dest = path.join(pkgDir, bindingFileName())
  const tmp = `${dest}.${process.pid}.tmp`
  fs.copyFileSync(library, tmp)
  fs.renameSync(tmp, dest)
  console.error(`rtcast: built ${path.relative(process.cwd(), dest) || dest}`)
}

build()
