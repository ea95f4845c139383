import assert from 'node:assert/strict'
import {createServer} from 'node:http'
import type {AddressInfo} from 'node:net'
import {after, before, describe, test} from 'node:test'

import {listChannels, resolveChannel} from '../src/channels.js'
import {AbortedError, ConnectionError, VersionError} from '../src/errors.js'
import {planHops} from '../src/versions/skew.js'
import {type ChannelServer, startChannelServer} from './sim/channel-server.js'

const CHANNELS = {
  stable: 'v1.31.4+k3s1',
  latest: 'v1.32.1+k3s2',
  testing: 'v1.33.0-rc1+k3s1',
  'v1.30': 'v1.30.8+k3s1',
  'v1.31': 'v1.31.4+k3s1',
  'v1.32': 'v1.32.1+k3s2',
}

/** A port nothing listens on: bound once, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

describe('channel resolution against the simulated channel server', () => {
  let server: ChannelServer

  before(async () => {
    server = await startChannelServer({channels: CHANNELS})
  })
  after(async () => {
    await server.stop()
  })

  test('follows the 302 of a named channel and reads the version from the Location', async () => {
    const before = server.requests.length
    const version = await resolveChannel('stable', {baseUrl: server.url})
    assert.equal(version.format(), 'v1.31.4+k3s1')
    // Only the redirect was asked for: the release page itself is never fetched.
    assert.deepEqual(server.requests.slice(before), ['GET /v1-release/channels/stable'])
  })

  test('resolves minor channels, with or without the v', async () => {
    assert.equal((await resolveChannel('v1.30', {baseUrl: server.url})).format(), 'v1.30.8+k3s1')
    assert.equal((await resolveChannel('1.32', {baseUrl: `${server.url}/`})).format(), 'v1.32.1+k3s2')
    assert.equal((await resolveChannel('testing', {baseUrl: server.url})).format(), 'v1.33.0-rc1+k3s1')
  })

  test('lists the channels from the JSON listing', async () => {
    const channels = await listChannels({baseUrl: server.url})
    assert.deepEqual(
      channels.map((c) => [c.id, c.latest]),
      Object.entries(CHANNELS),
    )
  })

  test('sees a channel move when the server changes it', async () => {
    server.setChannels({...CHANNELS, stable: 'v1.31.5+k3s1'})
    try {
      assert.equal((await resolveChannel('stable', {baseUrl: server.url})).format(), 'v1.31.5+k3s1')
    } finally {
      server.setChannels(CHANNELS)
    }
  })

  test('an unknown channel is a VersionError naming the known ones', async () => {
    await assert.rejects(resolveChannel('v1.99', {baseUrl: server.url}), (e: unknown) => {
      assert.ok(e instanceof VersionError, String(e))
      assert.match(e.message, /has no channel "v1\.99"/)
      assert.match(e.hint ?? '', /use one of: stable, latest, testing, v1\.30, v1\.31, v1\.32/)
      return true
    })
  })

  test('a channel value that is not a version is refused', async () => {
    server.setChannels({...CHANNELS, broken: 'not-a-version'})
    try {
      await assert.rejects(resolveChannel('broken', {baseUrl: server.url}), (e: unknown) => {
        assert.ok(e instanceof VersionError)
        assert.match(e.message, /says channel broken is "not-a-version", which is not a k3s version/)
        return true
      })
    } finally {
      server.setChannels(CHANNELS)
    }
  })

  test('a version passed as a channel is refused', async () => {
    await assert.rejects(resolveChannel('v1.31.4+k3s1', {baseUrl: server.url}), /is a version, not a channel/)
  })

  test('plans hops through the channel server', async () => {
    const hops = await planHops('v1.29.3+k3s1', 'v1.32.0+k3s1', (line) => resolveChannel(line, {baseUrl: server.url}))
    assert.deepEqual(hops.map(String), ['v1.30.8+k3s1', 'v1.31.4+k3s1', 'v1.32.0+k3s1'])
  })

  test('a server that does not answer in time is a ConnectionError', async () => {
    server.setDelay(2_000)
    try {
      const started = Date.now()
      await assert.rejects(resolveChannel('stable', {baseUrl: server.url, timeoutMs: 150}), (e: unknown) => {
        assert.ok(e instanceof ConnectionError, String(e))
        assert.match(e.message, /did not answer within 150ms/)
        assert.match(e.hint ?? '', /install\.channelUrl/)
        return true
      })
      assert.ok(Date.now() - started < 1_500)
    } finally {
      server.setDelay(0)
    }
  })

  test('cancellation is an AbortedError, not a connection problem', async () => {
    server.setDelay(2_000)
    try {
      const controller = new AbortController()
      setTimeout(() => controller.abort(), 50)
      await assert.rejects(resolveChannel('stable', {baseUrl: server.url, signal: controller.signal}), AbortedError)
    } finally {
      server.setDelay(0)
    }
  })
})

describe('channel server that cannot be reached', () => {
  test('a closed port is a ConnectionError saying how to fix it', async () => {
    const port = await closedPort()
    const baseUrl = `http://127.0.0.1:${port}/v1-release/channels`
    await assert.rejects(resolveChannel('stable', {baseUrl, timeoutMs: 5_000}), (e: unknown) => {
      assert.ok(e instanceof ConnectionError, String(e))
      assert.match(e.message, new RegExp(`cannot reach the channel server at http://127\\.0\\.0\\.1:${port}/v1-release/channels/stable: .*ECONNREFUSED`))
      assert.match(e.hint ?? '', /check install\.channelUrl in homelab\.yaml and the network, or pass an exact version/)
      return true
    })
    await assert.rejects(listChannels({baseUrl, timeoutMs: 5_000}), ConnectionError)
  })

  test('TLS is verified: a self-signed server is refused', async () => {
    const {generate} = await import('selfsigned')
    const {createServer: createHttps} = await import('node:https')
    const pems = await generate([{name: 'commonName', value: '127.0.0.1'}], {keySize: 2048})
    const server = createHttps({key: pems.private, cert: pems.cert}, (_req, res) => {
      res.writeHead(302, {location: 'https://example.invalid/tag/v1.31.4+k3s1'})
      res.end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const {port} = server.address() as AddressInfo
      await assert.rejects(resolveChannel('stable', {baseUrl: `https://127.0.0.1:${port}/channels`, timeoutMs: 5_000}), (e: unknown) => {
        assert.ok(e instanceof ConnectionError, String(e))
        assert.match(e.message, /certificate/i)
        return true
      })
    } finally {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})
