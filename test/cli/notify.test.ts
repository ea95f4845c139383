/**
 * Notifications on loopback receivers: every event of a run in each format, a receiver that is
 * down is a warning with the URL masked and does not change the exit code, and no token shows
 * up in anything the CLI wrote.
 */
import assert from 'node:assert/strict'
import {createServer, type IncomingMessage} from 'node:http'
import type {AddressInfo} from 'node:net'
import {readdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, it} from 'node:test'

import {TO, lab} from '../upgrade/helpers.js'

interface Received {
  path: string
  headers: IncomingMessage['headers']
  body: string
}

async function receiver(t: {after: (fn: () => Promise<void>) => void}, status = 200): Promise<{url: string; received: Received[]}> {
  const received: Received[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      received.push({path: req.url ?? '', headers: req.headers, body})
      res.writeHead(status).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return {url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received}
}

const TOKEN = 'xoxb-SECRET-7f3a9c'

describe('notifications', {timeout: 120_000}, () => {
  it('sends each event in json, slack, discord and ntfy; a dead receiver is a masked warning; no token is printed', async (t) => {
    const json = await receiver(t)
    const chat = await receiver(t)
    const ntfy = await receiver(t)
    // Nothing listens there any more.
    const dead = createServer()
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve))
    const deadPort = (dead.address() as AddressInfo).port
    await new Promise<void>((resolve) => dead.close(() => resolve()))
    const homelab = await lab(t, {
      config: {
        notify: [
          {url: `${json.url}/hooks/${TOKEN}?token=${TOKEN}`, format: 'json'},
          {url: `${chat.url}/services/${TOKEN}`, format: 'slack', events: ['succeeded', 'failed']},
          {url: `${chat.url}/api/webhooks/1/${TOKEN}`, format: 'discord', events: ['started']},
          {url: `${ntfy.url}/homelab-${TOKEN}`, format: 'ntfy', events: ['succeeded']},
          {url: `http://127.0.0.1:${deadPort}/hooks/${TOKEN}`, format: 'json', events: ['succeeded']},
        ],
      },
    })
    const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json'])
    assert.equal(result.exitCode, 0, `${JSON.stringify((JSON.parse(result.stdout) as {error?: unknown}).error)}\n${result.stderr}`)

    const events = json.received.map((r) => JSON.parse(r.body) as {event: string; node?: string; runId?: string; to?: string})
    assert.equal(events[0].event, 'started')
    assert.equal(events.at(-1)?.event, 'succeeded')
    assert.equal(events.at(-1)?.to, TO)
    assert.ok(events.every((e) => e.runId?.startsWith('20')), 'every event names the run')
    assert.deepEqual(events.filter((e) => e.event === 'node-done').map((e) => e.node).sort(), ['agent-1', 'agent-2', 'agent-3', 'server-1', 'server-2', 'server-3'])

    const slack = chat.received.filter((r) => r.path.startsWith('/services/'))
    assert.equal(slack.length, 1)
    assert.match((JSON.parse(slack[0].body) as {text: string}).text, /^\*homelab succeeded\*: upgrade of k3s to v1\.31\.5\+k3s1 succeeded/)
    const discord = chat.received.filter((r) => r.path.startsWith('/api/webhooks/'))
    assert.equal(discord.length, 1)
    assert.match((JSON.parse(discord[0].body) as {content: string}).content, /^\*\*homelab started\*\*: starting the upgrade/)
    assert.equal(ntfy.received.length, 1)
    assert.equal(ntfy.received[0].headers.title, 'homelab succeeded')
    assert.match(ntfy.received[0].body, /succeeded \(6 node\(s\)/)

    assert.match(result.stderr, /warning: notification succeeded to http:\/\/127\.0\.0\.1:\d+\/\*+ was not delivered: cannot connect \(ECONNREFUSED\)/)
    const journalDir = path.join(homelab.env.XDG_STATE_HOME, 'homelab', 'runs')
    const journalText = (await Promise.all((await readdir(journalDir)).map((f) => readFile(path.join(journalDir, f), 'utf8')))).join('\n')
    const shown = await homelab.cli(['config', 'show', '--json'])
    assert.equal(shown.exitCode, 0, shown.stderr)
    assert.match(shown.stdout, /notify/)
    for (const [where, text] of [['stdout', result.stdout], ['stderr', result.stderr], ['journal', journalText], ['config show', shown.stdout]] as const) {
      assert.ok(!text.includes(TOKEN), `${where} shows the token`)
    }
  })

  it('a refused run is told as failed', async (t) => {
    const json = await receiver(t)
    const homelab = await lab(t, {config: {notify: [{url: `${json.url}/hook`, events: ['failed']}]}})
    const result = await homelab.cli(['k8s', 'upgrade', '--to', 'v1.30.0+k3s1', '--yes'])
    assert.equal(result.exitCode, 3, result.stderr)
    assert.equal(json.received.length, 1)
    assert.match((JSON.parse(json.received[0].body) as {message: string}).message, /refused, nothing changed: pre-flight refused the upgrade/)
  })

  it('refuses a notify entry that is not an http(s) URL or names an unknown event (exit 2)', async (t) => {
    const homelab = await lab(t, {config: {notify: [{url: 'file:///etc/passwd', events: ['done']}]}})
    const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes'])
    assert.equal(result.exitCode, 2, result.stderr)
    assert.match(result.stderr, /notify/)
  })
})
