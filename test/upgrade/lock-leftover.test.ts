/**
 * A run killed after its journal said it ended, before it let the lock go, leaves its Lease
 * behind: the lock error then advises --resume of that run, which must free the lock (exit 2,
 * nothing to resume) instead of leaving the cluster locked until the Lease expires.
 */
import assert from 'node:assert/strict'
import {it} from 'node:test'

import {TO, journals, lab} from './helpers.js'

it('--resume of an ended run frees the lock it left behind', {timeout: 120_000}, async (t) => {
  const homelab = await lab(t, {servers: 1, agents: 1})
  const done = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes'])
  assert.equal(done.exitCode, 0, done.stderr)
  const [run] = await journals(homelab)
  const now = new Date().toISOString().replace('Z', '000Z')
  homelab.api.store.create({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {name: 'homelab-upgrade', namespace: 'kube-system'},
    spec: {holderIdentity: `${run.id}@ci-runner`, leaseDurationSeconds: 3600, acquireTime: now, renewTime: now},
  })
  const locked = await homelab.cli(['k8s', 'upgrade', '--to', 'v1.31.5+k3s1', '--yes'])
  assert.equal(locked.exitCode, 6, locked.stderr)
  assert.match(locked.stderr + locked.stdout, new RegExp(`--resume ${run.id}`))

  const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', run.id, '--yes'])
  assert.equal(resumed.exitCode, 2, resumed.stderr)
  assert.match(resumed.stderr, /is succeeded and cannot be resumed/)
  assert.equal(homelab.api.store.list('leases.coordination.k8s.io').filter((l) => l.metadata.name === 'homelab-upgrade').length, 0, 'the leftover lock is gone')
})
