// How long `stream.pushFrame` holds the JS thread: 1280x720 RGBA frames at 30 fps, first with no
// viewer (rtcast then skips encoding), then with one viewer (headless Chromium playing over WHEP,
// so every frame is encoded by the built-in H.264 encoder). Prints median and p99 per phase.
//
//     cd bindings/node && npm install && node bench/push.mjs     (BENCH_SECONDS=20 per phase)
import { launchChromium, openPlayer, poll, rtcast } from '../test/helpers.mjs'

const { Server } = rtcast

const WIDTH = 1280
const HEIGHT = 720
const FPS = 30
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20)

// A different frame each time (a moving gradient), so the encoder has real work.
const frames = Array.from({ length: 30 }, (_, k) => {
  const data = Buffer.alloc(WIDTH * HEIGHT * 4)
  for (let y = 0; y < HEIGHT; y++) {
    for (let x = 0; x < WIDTH; x++) {
      const i = (y * WIDTH + x) * 4
      data[i] = (x + k * 8) & 255
      data[i + 1] = (y + k * 4) & 255
      data[i + 2] = (x ^ y) & 255
      data[i + 3] = 255
    }
  }
  return data
})

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

async function phase(stream, name) {
  const times = []
  const start = performance.now()
  let n = 0
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const t0 = performance.now()
      stream.pushFrame({ data: frames[n % frames.length], width: WIDTH, height: HEIGHT, format: 'rgba', timestamp: (n * 1000) / FPS })
      times.push(performance.now() - t0)
      n++
      if (performance.now() - start >= SECONDS * 1000) {
        clearInterval(timer)
        resolve()
      }
    }, 1000 / FPS)
  })
  times.sort((a, b) => a - b)
  const s = stream.stats()
  console.log(
    `${name}: ${times.length} frames, pushFrame median ${percentile(times, 50).toFixed(2)} ms, ` +
      `p99 ${percentile(times, 99).toFixed(2)} ms, max ${times[times.length - 1].toFixed(2)} ms ` +
      `(encoded so far ${s.framesEncoded}, dropped ${s.framesDropped})`,
  )
}

const server = await Server.start({ bind: '127.0.0.1', port: 0, udpPort: 0, publicIps: ['127.0.0.1'] })
const stream = server.stream('bench', { audio: false, bitrate: 2_000_000 })
console.log(`rtcast ${rtcast.version()}, node ${process.version}, ${WIDTH}x${HEIGHT} RGBA at ${FPS} fps, ${SECONDS} s per phase`)
await phase(stream, 'no viewer ')
const chromium = await launchChromium()
try {
  const page = await openPlayer(chromium.browser, server.url('bench'), server.whepUrl('bench'))
  await poll('the viewer', () => stream.viewers > 0, { timeout: 30000 })
  await phase(stream, 'one viewer')
  const received = await page.evaluate(() => window.received.length)
  console.log(`the viewer received ${received} frames`)
} finally {
  await chromium.close()
  await server.close()
}
