// `authorize`: a function deciding, for each connecting viewer, whether it may watch; it may
// answer at once or with a Promise, and one that throws or rejects refuses.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { firstMessage, startServer } from './helpers.mjs'

/** What the server says first to a WebSocket viewer of `url`: the offer, or the refusal. */
const first = async (url) => JSON.parse(await firstMessage(url))

test('authorize refuses one viewer and admits another, and is told who asks', async () => {
  const asked = []
  const server = await startServer({
    authorize: (req) => {
      asked.push(req)
      return req.token === 'good'
    },
  })
  try {
    server.stream('cam')
    const refused = await first(`${server.wsUrl('cam')}?token=bad`)
    assert.equal(refused.type, 'error')
    assert.equal(refused.code, 403, JSON.stringify(refused))
    const admitted = await first(`${server.wsUrl('cam')}?token=good`)
    assert.equal(admitted.type, 'offer')
    assert.equal(asked.length, 2)
    assert.deepEqual(
      { stream: asked[0].stream, token: asked[0].token, protocol: asked[0].protocol },
      { stream: 'cam', token: 'bad', protocol: 'websocket' },
    )
    assert.match(asked[0].remote, /^127\.0\.0\.1:\d+$/)
  } finally {
    await server.close()
  }
})

test('authorize may answer with a Promise; a throw, a rejection or a non-boolean refuses', async () => {
  const server = await startServer({
    authorize: async (req) => {
      await new Promise((resolve) => setTimeout(resolve, 20))
      if (req.token === 'throw') throw new Error('hook failed')
      if (req.token === 'weird') return 'yes'
      return req.token === 'good'
    },
  })
  try {
    server.stream('cam')
    assert.equal((await first(`${server.wsUrl('cam')}?token=good`)).type, 'offer')
    for (const token of ['bad', 'throw', 'weird']) {
      const r = await first(`${server.wsUrl('cam')}?token=${token}`)
      assert.equal(r.code, 403, `${token}: ${JSON.stringify(r)}`)
    }
  } finally {
    await server.close()
  }
})
