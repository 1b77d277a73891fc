// `turnSecret`: each viewer is handed the TURN server with REST credentials computed from the
// shared secret, as coturn's `use-auth-secret` checks them; bad settings are refused at start.
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { test } from 'node:test'

import { firstMessage, rtcast, startServer } from './helpers.mjs'

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
