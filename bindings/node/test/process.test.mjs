// The package as a user's program uses it: `require('rtcast')` and `import ... from 'rtcast'` both
// work, and a program exits by itself once `await server.close()` returned, listeners and all.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { projectFile, runNode } from './helpers.mjs'

// The same program in both module systems: a server with every listener registered, a stream
// fed raw frames and Opus, then close. Nothing else keeps Node alive, so it must exit.
const body = `
const server = await Server.start({ bind: '127.0.0.1', port: 0, udpPort: 0, publicIps: ['127.0.0.1'] })
for (const name of ['viewer', 'viewerLeft', 'keyframeRequest', 'renditionSwitch', 'bitrate']) {
  server.on(name, (e) => console.log(name, e))
}
const stream = server.stream('cam')
const data = Buffer.alloc(64 * 64 * 4, 0x80)
for (let i = 0; i < 10; i++) {
  stream.pushFrame({ data, width: 64, height: 64, format: 'rgba', timestamp: i * 33 })
  stream.pushOpus(Buffer.from([0xf8, 0xff, 0xfe]), { timestamp: i * 20 })
}
const res = await fetch(server.url('cam'))
console.log('page', res.status, typeof Stream, stream instanceof Stream)
await server.close()
console.log('closed')
`

test('CommonJS: require("rtcast") works and the process exits after close()', async () => {
  const file = projectFile(
    'exit.cjs',
    `const { Server, Stream } = require('rtcast')\n;(async () => {${body}})().catch((e) => { console.error(e); process.exit(1) })\n`,
  )
  const r = await runNode(file)
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /page 200 function true\nclosed\n$/)
})

test('ESM: import from "rtcast" works and the process exits after close()', async () => {
  const file = projectFile('exit.mjs', `import { Server, Stream } from 'rtcast'\nimport rtcast from 'rtcast'\n${body}\nconsole.log(rtcast.Server === Server)\n`)
  const r = await runNode(file)
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /page 200 function true\nclosed\ntrue\n$/)
})

test('an unref()ed server lets the process exit without close()', async () => {
  const file = projectFile(
    'unref.mjs',
    `import { Server } from 'rtcast'\nconst server = await Server.start({ bind: '127.0.0.1', port: 0, udpPort: 0 })\nserver.on('viewer', () => {}).unref()\nconsole.log('started')\n`,
  )
  const r = await runNode(file)
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout, 'started\n')
})
