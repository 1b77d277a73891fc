// examples/node/pattern.mjs runs as its header says, serves its stream to a viewer, and exits
// when its DURATION is over.
import assert from 'node:assert/strict'
import { copyFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, test } from 'node:test'

import { launchChromium, near, openPlayer, pixelAt, poll, project, repoDir, runNode } from './helpers.mjs'

let chromium
before(async () => {
  chromium = await launchChromium()
})
after(async () => {
  await chromium?.close()
})

test('examples/node/pattern.mjs prints its player URL, serves the pattern and stops after DURATION', async () => {
  const file = path.join(project, 'pattern.mjs')
  copyFileSync(path.join(repoDir, 'examples', 'node', 'pattern.mjs'), file)
  let printed
  const urlPrinted = new Promise((resolve) => (printed = resolve))
  const run = runNode(file, {
    env: { PORT: '0', SIZE: '640x360', DURATION: '8' },
    onLine: (line) => {
      const m = line.match(/^watch at (http:\/\/\S+)$/)
      if (m) printed(m[1])
    },
  })
  const url = await Promise.race([
    urlPrinted,
    run.then((r) => Promise.reject(new Error(`exited before printing its URL: ${JSON.stringify(r)}`))),
  ])
  assert.match(url, /^http:\/\/[^/]+:\d+\/pattern\/embed\.html$/)
  // Play it over WHEP from loopback (the URL names the host's address; candidates are filtered to
  // loopback by the test client).
  const base = `http://127.0.0.1:${new URL(url).port}/pattern`
  const page = await openPlayer(chromium.browser, `${base}/embed.html`, `${base}/whep`)
  try {
    await poll('frames in Chromium', () => page.evaluate(() => window.received.length > 10))
    // The bars are saturated colours; a white or black one scrolls away within a few frames.
    await poll('the pattern in the player', async () => {
      const p = await pixelAt(page, 0.05, 0.1)
      return p && !near(p, [p[0], p[0], p[0]], 30)
    })
  } finally {
    await page.close()
  }
  const r = await run
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /viewer \d+ joined from 127\.0\.0\.1:\d+ \(whep\)/)
  // The WHEP viewer of the closed page is still within its consent timeout when the example
  // stops: its `left (shutdown)` event may be delivered after `close()` resolved.
  assert.match(r.stdout, /done: \d+ frames\n(viewer \d+ left \(shutdown\)\n)*$/)
})
