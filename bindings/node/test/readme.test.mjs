// The Node example of README.md ("Use from Node") runs as printed, so it cannot rot; and the
// README's table of error codes lists every code the binding has.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'

import { packageDir, projectFile, repoDir, runNode } from './helpers.mjs'

const readme = readFileSync(path.join(repoDir, 'README.md'), 'utf8')
const section = readme.slice(readme.indexOf('## Use from Node'), readme.indexOf('\n## ', readme.indexOf('## Use from Node') + 1))

test('the README example runs as printed: prints its URL, serves the page and exits after close()', async () => {
  const blocks = [...section.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1])
  assert.equal(blocks.length, 1, 'one js block in "Use from Node"')
  // The one change: a free port instead of 8080, which may be taken on a test machine.
  assert.equal(blocks[0].split('port: 8080').length, 2, 'the block starts the server with port: 8080')
  const file = projectFile('readme.mjs', blocks[0].replace('port: 8080', 'port: 0'))
  let fetched
  const r = await runNode(file, {
    onLine: (line) => {
      const m = line.match(/^watch at (http:\/\/\S+)$/)
      if (m) fetched = fetch(m[1].replace(/\/\/[^/:]+:/, '//127.0.0.1:')).then((res) => res.status)
    },
  })
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^watch at http:\/\/\S+:\d+\/cam\/embed\.html\n$/)
  assert.equal(await fetched, 200)
})

test('the README lists every error code of the binding', () => {
  const source = readFileSync(path.join(packageDir, 'src', 'error.rs'), 'utf8')
  const codes = [...source.matchAll(/: &str = "(ERR_RTCAST_\w+)"/g)].map((m) => m[1])
  assert.ok(codes.length >= 10)
  for (const code of codes) assert.ok(section.includes(`| \`${code}\` |`), `${code} is in the README table`)
})
