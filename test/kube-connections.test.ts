/**
 * Issue 11: API calls share keep-alive TLS connections instead of a handshake each
 * (@kubernetes/client-node 1.x makes a new agent per request; src/kube/client.ts keeps one).
 * Counted on the simulated API server's side: completed TLS handshakes.
 */
import assert from 'node:assert/strict'
import tls from 'node:tls'
import {after, before, test} from 'node:test'
import {KubeConfig} from '@kubernetes/client-node'

import {IDLE_CONNECTION_MS, KubeClients} from '../src/kube/client.js'
import {SimKubeApi} from './sim/kube-api/index.js'

let api: SimKubeApi

before(async () => {
  api = await SimKubeApi.start()
})
after(async () => {
  await api.stop()
})

function clients(): KubeClients {
  const kc = new KubeConfig()
  kc.loadFromString(api.kubeconfigYaml())
  return new KubeClients(kc)
}

test('sequential API calls reuse one TLS connection', async () => {
  const kube = clients()
  const before = api.tlsHandshakes
  for (let i = 0; i < 20; i++) await kube.core.listNode()
  await kube.core.listNamespacedPod({namespace: 'kube-system'})
  await kube.apps.listDeploymentForAllNamespaces()
  assert.ok(api.tlsHandshakes - before <= 2, `${api.tlsHandshakes - before} TLS handshakes for 22 sequential requests`)
})

test('parallel calls open at most one connection each, and later calls reuse them', async () => {
  const kube = clients()
  const before = api.tlsHandshakes
  await Promise.all(Array.from({length: 5}, () => kube.core.listNode()))
  const opened = api.tlsHandshakes - before
  assert.ok(opened <= 5, `${opened} handshakes for 5 parallel requests`)
  for (let i = 0; i < 10; i++) await kube.core.listNode()
  assert.equal(api.tlsHandshakes - before, opened, 'sequential requests after the parallel ones opened new connections')
})

test('a watch and plain requests side by side: the requests still share connections', async () => {
  const kube = clients()
  const before = api.tlsHandshakes
  const controller = await kube.watch.watch('/api/v1/nodes', {}, () => {}, () => {})
  for (let i = 0; i < 10; i++) await kube.core.listNode()
  controller.abort()
  assert.ok(api.tlsHandshakes - before <= 3, `${api.tlsHandshakes - before} handshakes for a watch and 10 requests`)
})

test('connections share one TLS context: not one built (CA and client key parsed) per watch', async () => {
  const kube = clients()
  await kube.core.listNode()
  // Node's TLS code calls the module's createSecureContext for a connection handed none.
  const original = tls.createSecureContext
  let built = 0
  tls.createSecureContext = (options) => {
    built++
    return original(options)
  }
  try {
    const before = api.tlsHandshakes
    for (let i = 0; i < 5; i++) {
      const controller = await kube.watch.watch('/api/v1/nodes', {}, () => {}, () => {})
      controller.abort()
    }
    await Promise.all(Array.from({length: 4}, () => kube.core.listNode()))
    assert.ok(api.tlsHandshakes - before >= 5, `the watches opened connections of their own (${api.tlsHandshakes - before} handshakes)`)
    assert.equal(built, 0, `${built} TLS contexts built for ${api.tlsHandshakes - before} connections`)
  } finally {
    tls.createSecureContext = original
  }
})

test('a pooled connection left unused is closed by us before the server would drop it', async () => {
  const kube = clients()
  await kube.core.listNode()
  await kube.core.listNode()
  const before = api.tlsHandshakes
  await kube.core.listNode()
  assert.equal(api.tlsHandshakes - before, 0, 'a connection used again at once is reused')
  // Past the idle limit, under the sim server's 5 s keep-alive timeout: we closed it, so a new one.
  await new Promise((r) => setTimeout(r, IDLE_CONNECTION_MS + 600))
  await kube.core.listNode()
  assert.equal(api.tlsHandshakes - before, 1)
})

test('a watch that stays quiet for longer than the idle limit keeps its connection and its events', async () => {
  const kube = clients()
  const events: string[] = []
  const controller = await kube.watch.watch('/api/v1/namespaces', {}, (type) => events.push(type), () => {})
  try {
    await new Promise((r) => setTimeout(r, IDLE_CONNECTION_MS + 600))
    await kube.core.createNamespace({body: {metadata: {name: 'quiet-watch-check'}}})
    const deadline = Date.now() + 5000
    while (!events.includes('ADDED') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    assert.ok(events.includes('ADDED'), `the quiet watch delivered ${JSON.stringify(events)}`)
  } finally {
    controller.abort()
  }
})
