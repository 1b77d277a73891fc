// Bad input throws an Error with a documented `code` and a message saying what was wrong, and
// changes nothing: the server keeps serving.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { rtcast, startServer } from './helpers.mjs'

/** Asserts that `f` throws (or rejects with) an Error of `code` whose message matches `message`. */
async function rejects(f, code, message) {
  await assert.rejects(async () => f(), (e) => {
    assert.ok(e instanceof Error, `${e} is an Error`)
    assert.equal(e.code, code, e.message)
    assert.match(e.message, message)
    return true
  })
}

const rgba = (w, h) => Buffer.alloc(w * h * 4)

test('Server.start rejects bad options and a port in use with the documented codes', async () => {
  await rejects(() => rtcast.Server.start({ port: 70000 }), 'ERR_RTCAST_INVALID_ARGUMENT', /port 70000 is not a port/)
  await rejects(() => rtcast.Server.start({ bind: '1.2.3' }), 'ERR_RTCAST_INVALID_ARGUMENT', /bind '1.2.3' is not an IP address/)
  await rejects(() => rtcast.Server.start({ candidates: 'udp,quic' }), 'ERR_RTCAST_INVALID_ARGUMENT', /"quic"/)
  await rejects(
    () => rtcast.Server.start({ bind: '127.0.0.1', port: 0, udpPort: 0, maxConnectingPerAddress: 0 }),
    'ERR_RTCAST_INVALID_ARGUMENT',
    /max_connecting_per_address/,
  )
  await rejects(
    () => rtcast.Server.start({ bind: '127.0.0.1', port: 0, udpPort: 0, maxConnecting: 0 }),
    'ERR_RTCAST_INVALID_ARGUMENT',
    /max_connecting\)/,
  )
  await rejects(() => rtcast.Server.start({ cert: '/nonexistent.pem' }), 'ERR_RTCAST_INVALID_ARGUMENT', /cert and key go together/)
  await rejects(
    () => rtcast.Server.start({ bind: '127.0.0.1', port: 0, cert: '/nonexistent/cert.pem', key: '/nonexistent/key.pem' }),
    'ERR_RTCAST_TLS',
    /nonexistent/,
  )
  const server = await startServer()
  try {
    await rejects(() => startServer({ port: server.port }), 'ERR_RTCAST_BIND', new RegExp(`${server.port}.*in use`))
  } finally {
    await server.close()
  }
})

test('bad pushes throw the documented errors and the stream keeps taking good ones', async () => {
  const server = await startServer()
  try {
    const stream = server.stream('cam', { audio: false })
    await rejects(
      () => stream.pushFrame({ data: Buffer.alloc(100), width: 1280, height: 720, format: 'rgba' }),
      'ERR_RTCAST_INVALID_FRAME',
      /rgba frame 1280x720 needs 3686400 bytes .* got 100/,
    )
    await rejects(
      () => stream.pushFrame({ data: rgba(16, 16), width: 16, height: 16, format: 'yuv9' }),
      'ERR_RTCAST_INVALID_FRAME',
      /yuv9/,
    )
    await rejects(
      () => stream.pushFrame({ data: rgba(16, 16), width: 16, height: 16, format: 'rgba', timestamp: -1 }),
      'ERR_RTCAST_INVALID_ARGUMENT',
      /timestamp -1 is not a time/,
    )
    await rejects(() => stream.pushH264(Buffer.from([1, 2, 3])), 'ERR_RTCAST_INVALID_DATA', /not H\.264 Annex B/)
    await rejects(() => stream.pushVp8(Buffer.from([1, 2, 3])), 'ERR_RTCAST_UNSUPPORTED', /carries H\.264 video/)
    await rejects(() => stream.pushOpus(Buffer.from([0xf8, 0xff, 0xfe])), 'ERR_RTCAST_UNSUPPORTED', /without audio/)
    // Wrong JavaScript types are caught by napi-rs before rtcast sees them.
    await rejects(() => stream.pushFrame({ width: 16, height: 16, format: 'rgba' }), 'InvalidArg', /Missing field `data`/)

    // Nothing above changed the stream.
    assert.equal(stream.stats().videoFrames, 0)
    stream.pushFrame({ data: rgba(16, 16), width: 16, height: 16, format: 'rgba', timestamp: 0 })
    assert.equal(stream.stats().videoFrames, 1)
    const page = await fetch(server.url('cam'))
    assert.equal(page.status, 200)
  } finally {
    await server.close()
  }
})

test('bad streams and events throw the documented errors', async () => {
  const server = await startServer()
  try {
    await rejects(() => server.stream('bad name'), 'ERR_RTCAST_INVALID_ARGUMENT', /stream name "bad name" is not valid/)
    await rejects(() => server.stream('v', { video: 'av1' }), 'ERR_RTCAST_UNSUPPORTED', /unknown video codec 'av1'/)
    await rejects(() => server.on('frame', () => {}), 'ERR_RTCAST_INVALID_ARGUMENT', /unknown event 'frame'; events: viewer/)
    const vp8 = server.stream('vp8', { video: 'vp8' })
    await rejects(() => vp8.pushH264(Buffer.from([0, 0, 0, 1, 0x65])), 'ERR_RTCAST_UNSUPPORTED', /carries VP8 video/)
    await rejects(() => vp8.pushVp8(Buffer.alloc(0)), 'ERR_RTCAST_INVALID_DATA', /./)
    assert.deepEqual(server.streams(), ['vp8'])
    const info = await (await fetch(`http://127.0.0.1:${server.port}/vp8/media_info.json`)).json()
    assert.equal(info.tracks.find((t) => t.content === 'video').codec, 'vp8')
  } finally {
    await server.close()
  }
})

test('the candidate policy "udp" turns ICE-TCP off', async () => {
  const server = await startServer({ candidates: 'udp' })
  try {
    assert.equal(server.tcpPort, 0)
  } finally {
    await server.close()
  }
})

test('after close, pushes and calls throw, close is idempotent', async () => {
  const server = await startServer()
  const stream = server.stream('cam')
  assert.equal(server.url('cam'), `http://127.0.0.1:${server.port}/cam/embed.html`)
  assert.equal(server.whepUrl('cam'), `http://127.0.0.1:${server.port}/cam/whep`)
  assert.equal(server.wsUrl('cam'), `ws://127.0.0.1:${server.port}/cam/webrtc`)
  // ICE-TCP on a port of its own here (the test server picks free ports).
  assert.ok(server.tcpPort > 0 && server.tcpPort !== server.port)
  assert.equal(server.stats().streams, 1)
  await server.close()
  assert.ok(server.closed && stream.closed)
  await rejects(
    () => stream.pushFrame({ data: rgba(16, 16), width: 16, height: 16, format: 'rgba' }),
    'ERR_RTCAST_STREAM_CLOSED',
    /stream 'cam' is closed/,
  )
  await rejects(() => server.stream('other'), 'ERR_RTCAST_SERVER_STOPPED', /server is stopped/)
  await rejects(() => server.stats(), 'ERR_RTCAST_SERVER_STOPPED', /server is stopped/)
  await server.close()
})

test('package.json, package-lock.json and the crates have one version, and version() reports it', async () => {
  const { readFileSync } = await import('node:fs')
  const { packageDir, repoDir } = await import('./helpers.mjs')
  const pkg = JSON.parse(readFileSync(`${packageDir}/package.json`, 'utf8'))
  const cargo = readFileSync(`${repoDir}/Cargo.toml`, 'utf8').match(/\[workspace\.package\][^[]*?\nversion = "([^"]+)"/)
  assert.ok(cargo, 'workspace version in Cargo.toml')
  assert.equal(pkg.version, cargo[1])
  const lock = JSON.parse(readFileSync(`${packageDir}/package-lock.json`, 'utf8'))
  assert.equal(lock.packages[''].version, cargo[1], 'package-lock.json')
  assert.equal(rtcast.version(), cargo[1])
})
