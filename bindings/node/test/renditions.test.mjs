// A stream with a ladder of renditions ('v1', 'v2'...): each rendition's encoded video is pushed
// by name, the plain pushes are refused, and a ladder the core refuses throws.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { startServer } from './helpers.mjs'

// An IDR slice in Annex B form: enough for the core to take it as a keyframe.
const idr = Buffer.from([0, 0, 0, 1, 0x65, 0x88])
// A VP8 keyframe header of 16x16 pixels with a 1-byte first partition.
const vp8Key = Buffer.from([0x30, 0x00, 0x00, 0x9d, 0x01, 0x2a, 16, 0, 16, 0, 0xaa])
const ladder = [
  { width: 1280, height: 720, bitrateBps: 2_500_000 },
  { width: 640, height: 360, bitrateBps: 800_000 },
]

/** Asserts that `f` throws an Error of `code` whose message matches `message`. */
function throws(f, code, message) {
  assert.throws(f, (e) => {
    assert.ok(e instanceof Error, `${e} is an Error`)
    assert.equal(e.code, code, e.message)
    assert.match(e.message, message)
    return true
  })
}

test('a ladder stream takes each rendition by name and refuses the others and plain pushes', async () => {
  const server = await startServer()
  try {
    const stream = server.stream('ladder', { audio: false, renditions: ladder })
    stream.pushH264(idr, { timestamp: 0, rendition: 'v2' })
    stream.pushH264(idr, { timestamp: 0, rendition: 'v1' })
    throws(() => stream.pushH264(idr, { rendition: 'v9' }), 'ERR_RTCAST_INVALID_DATA', /no rendition 'v9'.*v1, v2/)
    throws(() => stream.pushH264(idr), 'ERR_RTCAST_INVALID_DATA', /2 renditions.*push_h264_rendition/)
    throws(() => stream.pushH264(idr, { timestamp: 33 }), 'ERR_RTCAST_INVALID_DATA', /2 renditions/)
    throws(() => stream.pushVp8(vp8Key, { rendition: 'v1' }), 'ERR_RTCAST_UNSUPPORTED', /carries H\.264/)

    const vp8 = server.stream('vp8-ladder', { video: 'vp8', audio: false, renditions: ladder })
    vp8.pushVp8(vp8Key, { rendition: 'v2' })
    throws(() => vp8.pushVp8(vp8Key), 'ERR_RTCAST_INVALID_DATA', /push_vp8_rendition/)
  } finally {
    await server.close()
  }
})

test('a bad ladder throws ERR_RTCAST_INVALID_ARGUMENT and makes no stream', async () => {
  const server = await startServer()
  try {
    const bad = [
      [[...ladder].reverse(), /must have a lower bitrate than v1/],
      [[{ width: 1281, height: 720, bitrateBps: 2_500_000 }], /rendition v1 is 1281x720/],
      [[{ width: 1280, height: 720, bitrateBps: 1000 }], /rendition v1: bitrate 1000/],
      [Array.from({ length: 9 }, (_, i) => ({ width: 320, height: 240, bitrateBps: 2_000_000 - i * 100_000 })), /at most 8/],
    ]
    for (const [renditions, message] of bad) {
      throws(() => server.stream('bad', { renditions }), 'ERR_RTCAST_INVALID_ARGUMENT', message)
    }
    // A rendition without its bitrate is caught by napi-rs before rtcast sees it.
    throws(() => server.stream('bad', { renditions: [{ width: 640, height: 360 }] }), 'InvalidArg', /bitrateBps/)
    assert.deepEqual(server.streams(), [])
  } finally {
    await server.close()
  }
})

test('a stream of one rendition is v1 and its encoder may follow its viewers', async () => {
  const server = await startServer()
  try {
    const stream = server.stream('follow', { audio: false, followViewersFloorBps: 300_000 })
    stream.pushH264(idr)
    stream.pushH264(idr, { rendition: 'v1' })
    throws(() => stream.pushH264(idr, { rendition: 'v2' }), 'ERR_RTCAST_INVALID_DATA', /its renditions are v1$/)
    assert.equal(stream.stats().videoFrames, 2)
  } finally {
    await server.close()
  }
})
