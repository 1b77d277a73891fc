// Serves a moving test pattern made in JavaScript: raw RGBA frames that rtcast encodes once (H.264)
// for every viewer. Prints the player URL; open it in a browser.
//
//     npm install /path/to/rtcast/bindings/node     (builds rtcast from source with cargo)
//     node pattern.mjs                              (PORT=8080 SIZE=1280x720 FPS=30 DURATION=seconds)
import { Server } from 'rtcast'

const port = Number(process.env.PORT ?? 8080)
const [width, height] = (process.env.SIZE ?? '1280x720').split('x').map(Number)
const fps = Number(process.env.FPS ?? 30)
const duration = process.env.DURATION ? Number(process.env.DURATION) : Infinity

const server = await Server.start({ port })
const stream = server.stream('pattern', { audio: false })
server.on('viewer', (v) => console.log(`viewer ${v.viewer} joined from ${v.remote} (${v.protocol})`))
server.on('viewerLeft', (v) => console.log(`viewer ${v.viewer} left (${v.reason})`))
console.log(`watch at ${server.url('pattern')}`)

// Eight vertical colour bars scrolling left, and a white square bouncing across them.
const BARS = [0xffffffff, 0xff00ffff, 0xffffff00, 0xff00ff00, 0xffff00ff, 0xff0000ff, 0xffff0000, 0xff000000]
const data = Buffer.alloc(width * height * 4)
const pixels = new Uint32Array(data.buffer, data.byteOffset, width * height) // little-endian ABGR
const row = new Uint32Array(width)
function draw(n) {
  for (let x = 0; x < width; x++) row[x] = BARS[Math.floor((((x + n * 4) % width) * BARS.length) / width)]
  for (let y = 0; y < height; y++) pixels.set(row, y * width)
  const side = Math.floor(height / 8)
  const span = 2 * (width - side)
  const x0 = Math.abs(((n * 8) % span) - (width - side))
  const y0 = Math.floor((height - side) / 2)
  for (let y = y0; y < y0 + side; y++) pixels.fill(0xffffffff, y * width + x0, y * width + x0 + side)
}

const start = performance.now()
let n = 0
const timer = setInterval(async () => {
  const t = performance.now() - start
  if (t >= duration * 1000) {
    clearInterval(timer)
    await server.close()
    console.log(`done: ${n} frames`)
    return
  }
  draw(n++)
  stream.pushFrame({ data, width, height, format: 'rgba', timestamp: t })
}, 1000 / fps)

process.on('SIGINT', async () => {
  clearInterval(timer)
  await server.close()
})
