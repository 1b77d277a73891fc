// `turnSecret`: each viewer is handed the TURN server with REST credentials computed from the
// shared secret, as coturn's `use-auth-secret` checks them; bad settings are refused at start.
import assert from 'node:assert/strict'
import { createHmac, randomBytes } from 'node:crypto'
import http from 'node:http'
import { test } from 'node:test'

import { rtcast, startServer } from './helpers.mjs'

/** Opens a WebSocket to `url` (Node 20 has no client of its own) and resolves with its first text message. */
function firstMessage(url) {
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

test('turnSecret hands each WebSocket viewer the TURN server with credentials of the shared secret', async () => {
  const secret = 'north-shore'
  const server = await startServer({
    iceServers: [{ urls: ['stun:127.0.0.1:3478'] }],
    turnSecret: { urls: ['turn:127.0.0.1:3478?transport=udp'], secret, ttlSeconds: 600 },
  })
  try {
    server.stream('cam')
    const offer = JSON.parse(await firstMessage(server.wsUrl('cam')))
    assert.equal(offer.type, 'offer')
    const servers = offer.config.iceServers
    assert.equal(servers.length, 2, JSON.stringify(servers))
    assert.deepEqual(servers[0], { urls: ['stun:127.0.0.1:3478'] })
    const turn = servers[1]
    assert.deepEqual(turn.urls, ['turn:127.0.0.1:3478?transport=udp'])
    const [expiry] = turn.username.split(':')
    assert.ok(Math.abs(Number(expiry) - (Date.now() / 1000 + 600)) < 60, turn.username)
    // What coturn computes from its static-auth-secret to check the password.
    assert.equal(turn.credential, createHmac('sha1', secret).update(turn.username).digest('base64'))
  } finally {
    await server.close()
  }
})

test('a turnSecret without URLs or with a STUN URL is refused at start, saying why', async () => {
  for (const [turnSecret, message] of [
    [{ urls: [], secret: 's' }, /turn_secret has no URL/],
    [{ urls: ['stun:127.0.0.1:3478'], secret: 's' }, /not a TURN URL/],
    [{ urls: ['turn:127.0.0.1:3478'], secret: '' }, /secret is empty/],
  ]) {
    await assert.rejects(
      () => rtcast.Server.start({ bind: '127.0.0.1', port: 0, udpPort: 0, turnSecret }),
      (e) => {
        assert.equal(e.code, 'ERR_RTCAST_INVALID_ARGUMENT', e.message)
        assert.match(e.message, message)
        return true
      },
    )
  }
})
