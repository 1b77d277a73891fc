// Media reaches an independent WebRTC client (headless Chromium): raw frames of known colours are
// encoded and shown, pushed H.264 access units and VP8 frames arrive unchanged, and the events
// come back.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, test } from 'node:test'

import {
  accessUnits,
  launchChromium,
  near,
  nalType,
  nalUnits,
  nextEvent,
  openPlayer,
  pixelAt,
  poll,
  startServer,
} from './helpers.mjs'

let chromium
before(async () => {
  chromium = await launchChromium()
})
after(async () => {
  await chromium?.close()
})

/** Pushes `frame()` at 30 fps (media time from 0) until stopped. */
function pushLoop(push) {
  let i = 0
  const timer = setInterval(() => push(i++, (i * 1000) / 30), 1000 / 30)
  return () => clearInterval(timer)
}

function solid(width, height, [r, g, b]) {
  const data = Buffer.alloc(width * height * 4)
  for (let i = 0; i < data.length; i += 4) {
    data[i] = r
    data[i + 1] = g
    data[i + 2] = b
    data[i + 3] = 255
  }
  return data
}

test('raw RGBA frames of solid colours are shown in that colour by a WebSocket viewer', async () => {
  const server = await startServer()
  const stream = server.stream('cam', { audio: false })
  const colours = { red: [255, 0, 0], green: [0, 255, 0], blue: [0, 0, 255] }
  const frames = Object.fromEntries(Object.entries(colours).map(([k, c]) => [k, solid(320, 240, c)]))
  let current = 'red'
  const joined = nextEvent(server, 'viewer')
  const stop = pushLoop((_, timestamp) =>
    stream.pushFrame({ data: frames[current], width: 320, height: 240, format: 'rgba', timestamp }),
  )
  let page
  try {
    page = await openPlayer(chromium.browser, server.url('cam'))
    const viewer = await joined
    assert.equal(viewer.stream, 'cam')
    assert.equal(viewer.protocol, 'websocket')
    assert.match(viewer.remote, /^127\.0\.0\.1:\d+$/)
    for (const name of ['red', 'green', 'blue']) {
      current = name
      await poll(`${name} in the player`, async () => near(await pixelAt(page, 0.5, 0.5), colours[name]))
      // Bad input between good frames: it throws, and the viewer keeps playing (next colour).
      assert.throws(() => stream.pushFrame({ data: frames.red, width: 640, height: 480, format: 'rgba' }), {
        code: 'ERR_RTCAST_INVALID_FRAME',
      })
      assert.throws(() => stream.pushH264(Buffer.from('not h264')), { code: 'ERR_RTCAST_INVALID_DATA' })
    }
    assert.equal(server.stats().viewers, 1)
    // The viewer's figures, as its media loop publishes them (about once a second); Chromium's
    // receiver reports give the round-trip time.
    const figures = await poll('the viewer\'s figures', () => {
      const [v] = stream.viewerStats()
      return v && v.bitrateBps > 0 && v.rttMs !== undefined ? v : undefined
    })
    assert.equal(figures.id, viewer.viewer)
    assert.equal(figures.protocol, 'websocket')
    assert.equal(figures.transport, 'udp')
    assert.equal(figures.rendition, 'v1')
    assert.ok(figures.estimateBps === undefined || figures.estimateBps > 0, JSON.stringify(figures))
    assert.ok(figures.bytesSent > 0 && figures.rttMs >= 0, JSON.stringify(figures))
    assert.deepEqual(server.viewerStats().map((v) => v.id), [viewer.viewer])
    const left = nextEvent(server, 'viewerLeft')
    await page.close()
    const gone = await left
    assert.equal(gone.viewer, viewer.viewer)
    assert.equal(gone.stream, 'cam')
  } finally {
    stop()
    await server.close()
  }
})

test('pushed H.264 access units reach a WHEP viewer unchanged, in order, and show their colours', async () => {
  const server = await startServer()
  const stream = server.stream('h264', { audio: false })
  const fixture = accessUnits(readFileSync(new URL('fixtures/halves-320x240.h264', import.meta.url)))
  assert.equal(fixture.length, 60)
  const vcl = (au) => nalUnits(au).filter((n) => nalType(n) === 1 || nalType(n) === 5)
  const sps = nalUnits(fixture[0]).find((n) => nalType(n) === 7)
  const pps = nalUnits(fixture[0]).find((n) => nalType(n) === 8)

  // Nothing pushed yet: the joining viewer has nothing to play, so the host is asked for a keyframe.
  const keyframeRequest = nextEvent(server, 'keyframeRequest')
  const bitrate = nextEvent(server, 'bitrate', (e) => e.stream === 'h264', 30000)
  let stop = () => {}
  let page
  try {
    page = await openPlayer(chromium.browser, server.url('h264'), server.whepUrl('h264'))
    assert.deepEqual(await keyframeRequest, { stream: 'h264', rendition: 'v1' })
    stop = pushLoop((i, timestamp) => stream.pushH264(fixture[i % fixture.length], { timestamp }))
    const received = await poll('60 frames in Chromium', () =>
      page.evaluate(() => (window.received.length >= 60 ? window.received : null)),
    )
    received.slice(0, 60).forEach((frame, i) => {
      const got = nalUnits(Buffer.from(frame.data))
      assert.deepEqual(
        got.filter((n) => nalType(n) === 1 || nalType(n) === 5),
        vcl(fixture[i]),
        `access unit ${i}: slices differ`,
      )
      if (i % 30 === 0) {
        assert.equal(frame.type, 'key', `access unit ${i} is the keyframe`)
        assert.deepEqual(got.find((n) => nalType(n) === 7), sps, `access unit ${i} carries the SPS`)
        assert.deepEqual(got.find((n) => nalType(n) === 8), pps, `access unit ${i} carries the PPS`)
      }
    })
    // The fixture's picture: top half red, bottom half blue.
    await poll('red top, blue bottom', async () => {
      const [top, bottom] = [await pixelAt(page, 0.5, 0.1), await pixelAt(page, 0.5, 0.9)]
      return near(top, [255, 0, 0]) && near(bottom, [0, 0, 255])
    })
    // Chromium's bandwidth estimate (REMB) comes back as a hint.
    const hint = await bitrate
    assert.ok(Number.isInteger(hint.bps) && hint.bps > 0, `bps ${hint.bps}`)
  } finally {
    stop()
    await page?.close()
    await server.close()
  }
})

test('pushed VP8 frames reach a WHEP viewer byte for byte, in order, and show their colours', async () => {
  // tests/fixtures/halves-320x240.ivf (libvpx): a 32-byte file header, then per frame a 12-byte
  // header (size, timestamp) and the frame.
  const ivf = readFileSync(new URL('../../../tests/fixtures/halves-320x240.ivf', import.meta.url))
  const fixture = []
  for (let at = ivf.readUInt16LE(6); at + 12 <= ivf.length; ) {
    const size = ivf.readUInt32LE(at)
    fixture.push(ivf.subarray(at + 12, at + 12 + size))
    at += 12 + size
  }
  assert.equal(fixture.length, 60)
  const server = await startServer()
  const stream = server.stream('vp8', { video: 'vp8', audio: false })
  const keyframeRequest = nextEvent(server, 'keyframeRequest')
  let stop = () => {}
  let page
  try {
    page = await openPlayer(chromium.browser, server.url('vp8'), server.whepUrl('vp8'))
    await keyframeRequest
    stop = pushLoop((i, timestamp) => stream.pushVp8(fixture[i % fixture.length], { timestamp }))
    const received = await poll('60 frames in Chromium', () =>
      page.evaluate(() => (window.received.length >= 60 ? window.received : null)),
    )
    // The viewer starts at a keyframe of the pushed sequence; from there every frame is the
    // pushed one, byte for byte, in order.
    const frames = received.map((f) => Buffer.from(f.data))
    const start = fixture.findIndex((f) => f.equals(frames[0]))
    assert.ok(start >= 0, `the first received frame (${frames[0].length} bytes) is not a pushed one`)
    assert.equal(fixture[start][0] & 1, 0, 'the first received frame is a keyframe')
    frames.slice(0, 60).forEach((got, k) => {
      const i = (start + k) % fixture.length
      assert.ok(got.equals(fixture[i]), `received frame ${k} is not pushed frame ${i}`)
    })
    await poll('red top, blue bottom', async () => {
      const [top, bottom] = [await pixelAt(page, 0.5, 0.1), await pixelAt(page, 0.5, 0.9)]
      return near(top, [255, 0, 0]) && near(bottom, [0, 0, 255])
    })
  } finally {
    stop()
    await page?.close()
    await server.close()
  }
})
