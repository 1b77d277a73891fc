// What the tests share: rtcast loaded the way a user gets it (installed with `npm install <path>`
// into a scratch project by test.sh), headless Chromium as the independent WebRTC client, and
// H.264 Annex B parsing.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const packageDir = fileURLToPath(new URL('..', import.meta.url))
export const repoDir = path.resolve(packageDir, '../..')

/** The scratch project rtcast was installed into (test.sh sets it; the tests need it). */
export const project = process.env.RTCAST_TEST_PROJECT

/** `require('rtcast')` from the scratch project (the benchmark, run without one, loads this folder). */
export const rtcast = project
  ? createRequire(path.join(project, 'package.json'))('rtcast')
  : createRequire(import.meta.url)('..')

/** A server on loopback only, on free ports, announcing 127.0.0.1. */
export function startServer(options = {}) {
  return rtcast.Server.start({ bind: '127.0.0.1', port: 0, udpPort: 0, publicIps: ['127.0.0.1'], ...options })
}

/** Resolves with the first event `name` of `server` that `accept`s, or rejects after `ms`. */
export function nextEvent(server, name, accept = () => true, ms = 20000) {
  return new Promise((resolve, reject) => {
    let done = false
    const timer = setTimeout(() => {
      done = true
      reject(new Error(`no '${name}' event within ${ms} ms`))
    }, ms)
    server.on(name, (e) => {
      if (done || !accept(e)) return
      done = true
      clearTimeout(timer)
      resolve(e)
    })
  })
}

/** Headless Chromium (Debian's, from scripts/ensure-chromium.sh) on loopback only. */
export async function launchChromium() {
  const { chromium } = createRequire(import.meta.url)('playwright-core')
  const profile = mkdtempSync(path.join(tmpdir(), 'rtcast-node-chromium-'))
  // A persistent context on a fresh profile directory: Playwright's way of `--user-data-dir`.
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--autoplay-policy=no-user-gesture-required',
      '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      // Nothing resolves but localhost (and the loopback literals, which go through the rules too).
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost, EXCLUDE 127.0.0.1',
    ],
  })
  return {
    browser,
    async close() {
      await browser.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}

/** The NAL units of an Annex B buffer (without start codes). */
export function nalUnits(buf) {
  const starts = []
  for (let i = 0; i + 2 < buf.length; i++) {
    if (buf[i] === 0 && buf[i + 1] === 0 && buf[i + 2] === 1) {
      starts.push(i + 3)
      i += 2
    }
  }
  return starts.map((s, k) => {
    let end = k + 1 < starts.length ? starts[k + 1] - 3 : buf.length
    while (end > s && buf[end - 1] === 0) end-- // a 4-byte start code's leading zero
    return buf.subarray(s, end)
  })
}

/** Splits an Annex B elementary stream into access units (one slice per picture, as x264 makes). */
export function accessUnits(stream) {
  const units = []
  let current = []
  let hasSlice = false
  for (const nal of nalUnits(stream)) {
    const type = nal[0] & 0x1f
    const slice = type === 1 || type === 5
    if (hasSlice && (!slice || (nal[1] & 0x80) !== 0)) {
      units.push(current)
      current = []
      hasSlice = false
    }
    current.push(nal)
    hasSlice ||= slice
  }
  if (current.length) units.push(current)
  const code = Buffer.from([0, 0, 0, 1])
  return units.map((nals) => Buffer.concat(nals.flatMap((n) => [code, n])))
}

export const nalType = (nal) => nal[0] & 0x1f

/**
 * Opens `url` in a new page. With `whep`, the page plays that WHEP endpoint with a plain
 * RTCPeerConnection that keeps every encoded video frame it receives (`window.received`, via
 * encoded insertable streams); loopback candidates only. Returns the page.
 */
export async function openPlayer(browser, url, whep) {
  const page = await browser.newPage()
  await page.goto(url)
  if (whep) {
    await page.evaluate(async (endpoint) => {
      const loopbackOnly = (sdp) =>
        sdp
          .split('\r\n')
          .filter((l) => !l.startsWith('a=candidate:') || l.includes(' 127.0.0.1 '))
          .join('\r\n')
      window.received = []
      const pc = new RTCPeerConnection({ encodedInsertableStreams: true })
      window.pc = pc
      const transceiver = pc.addTransceiver('video', { direction: 'recvonly' })
      const { readable, writable } = transceiver.receiver.createEncodedStreams()
      readable
        .pipeThrough(
          new TransformStream({
            transform(frame, controller) {
              window.received.push({ type: frame.type, data: Array.from(new Uint8Array(frame.data)) })
              controller.enqueue(frame)
            },
          }),
        )
        .pipeTo(writable)
      const video = document.createElement('video')
      video.muted = true
      video.autoplay = true
      document.body.append(video)
      pc.ontrack = (e) => {
        video.srcObject = new MediaStream([e.track])
      }
      await pc.setLocalDescription(await pc.createOffer())
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve()
        pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && resolve()
        setTimeout(resolve, 500)
      })
      const res = await fetch(endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp' },
        body: loopbackOnly(pc.localDescription.sdp),
      })
      if (res.status !== 201) throw new Error(`WHEP POST: ${res.status} ${await res.text()}`)
      await pc.setRemoteDescription({ type: 'answer', sdp: loopbackOnly(await res.text()) })
    }, whep)
  }
  return page
}

/** The colour ([r, g, b]) at (fx, fy) (fractions of the width/height) of the page's playing video. */
export function pixelAt(page, fx, fy) {
  return page.evaluate(
    ([fx, fy]) => {
      const video = document.querySelector('video')
      if (!video || video.readyState < 2 || !video.videoWidth) return null
      const canvas = document.createElement('canvas')
      canvas.width = video.videoWidth
      canvas.height = video.videoHeight
      const ctx = canvas.getContext('2d')
      ctx.drawImage(video, 0, 0)
      const d = ctx.getImageData(Math.floor(fx * canvas.width), Math.floor(fy * canvas.height), 1, 1).data
      return [d[0], d[1], d[2]]
    },
    [fx, fy],
  )
}

export const near = (got, want, tolerance = 48) =>
  got != null && got.every((v, i) => Math.abs(v - want[i]) <= tolerance)

/** Calls `step` every `ms` until it returns a truthy value (returned), or throws after `timeout`. */
export async function poll(what, step, { ms = 100, timeout = 20000 } = {}) {
  const until = Date.now() + timeout
  let last
  while (Date.now() < until) {
    last = await step()
    if (last) return last
    await new Promise((r) => setTimeout(r, ms))
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`)
}

/**
 * Runs `node file` in the scratch project (where `rtcast` resolves as for a user) with `env`
 * added; `onLine` sees each stdout line. Resolves with { code, signal, stdout, stderr } once it
 * exits, or kills it and rejects after `ms`.
 */
export function runNode(file, { env = {}, onLine = () => {}, ms = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { cwd: project, env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    let pending = ''
    child.stdout.on('data', (d) => {
      stdout += d
      pending += d
      const lines = pending.split('\n')
      pending = lines.pop()
      lines.forEach(onLine)
    })
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`node ${file} did not exit within ${ms} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, ms)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

/** Writes `text` to `name` in the scratch project; returns its path. */
export function projectFile(name, text) {
  const file = path.join(project, name)
  writeFileSync(file, text)
  return file
}

/** Opens a WebSocket to `url` (Node 20 has no client of its own) and resolves with its first text message. */
export function firstMessage(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url.replace(/^ws:/, 'http:'), {
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
      },
    })
    req.on('error', reject)
    req.on('response', (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)))
    req.on('upgrade', (_res, socket, head) => {
      let buf = head
      const tryFrame = () => {
        if (buf.length < 2) return
        // A server frame is not masked; the offer is longer than 125 bytes.
        let len = buf[1] & 0x7f
        let at = 2
        if (len === 126) {
          if (buf.length < 4) return
          len = buf.readUInt16BE(2)
          at = 4
        } else if (len === 127) {
          if (buf.length < 10) return
          len = Number(buf.readBigUInt64BE(2))
          at = 10
        }
        if (buf.length < at + len) return
        socket.destroy()
        resolve(buf.subarray(at, at + len).toString('utf8'))
      }
      socket.on('data', (d) => {
        buf = Buffer.concat([buf, d])
        tryFrame()
      })
      socket.on('error', reject)
      tryFrame()
    })
  })
}
