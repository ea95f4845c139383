import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import {FROM, TO, describeWrites, journals, lab, nodeStates, parseJson, spawnCli, writes} from './helpers.js'

describe('the cluster lock', () => {
  test('while a run is upgrading, a second run, a rollback and a resume of it exit 6 and change nothing; the first finishes', async (t) => {
    // Nodes slow to come back keep the first run busy while the others try.
    const homelab = await lab(t, {readyDelayMs: 500})
    const {api} = homelab
    const first = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--log-format', 'json'])
    const started = await first.waitForEvent((e) => e.type === 'run-started')
    await first.waitForEvent((e) => e.type === 'log' && e.step === 'servers' && e.message === 'restarting k3s')

    const [second, rollback, resume] = await Promise.all([
      homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json']),
      homelab.cli(['k8s', 'rollback', '--yes']),
      homelab.cli(['k8s', 'upgrade', '--resume', '--yes']),
    ])
    assert.equal(first.child.exitCode, null, 'the first run ended before the others tried; this test proves nothing')
    // The Lease lets a crashed run take its own lock back: only the journal's live writer tells a running run apart.
    for (const other of [rollback, resume]) {
      assert.equal(other.exitCode, 6, `${other.stdout}\n${other.stderr}`)
      assert.match(other.stderr, new RegExp(`run ${started.runId} is still running \\(pid \\d+\\)`))
    }
    assert.equal(second.exitCode, 6, `${second.stdout}\n${second.stderr}`)
    const result = parseJson<{outcome: string; error: {message: string; hint: string}}>(second.stdout)
    assert.equal(result.outcome, 'locked')
    assert.match(result.error.message, new RegExp(`another upgrade holds the cluster lock \\(Lease kube-system/homelab-upgrade, holder ${started.runId}@`))
    assert.match(result.error.hint, new RegExp(`--resume ${started.runId}`))

    assert.equal((await first.exited).code, 0, first.stderr().slice(-3000))
    // Only the first run wrote: one lease taken and given back, one backup, no restore, one journal.
    assert.equal(api.audit.matching({verb: 'create', resource: 'leases'}).length, 1)
    for (const renewal of api.audit.matching({verb: 'update', resource: 'leases'})) {
      assert.match((renewal.body as {spec: {holderIdentity: string}}).spec.holderIdentity, new RegExp(`^${started.runId}@`))
    }
    assert.equal(api.store.list('restores.velero.io').length, 0)
    assert.equal(api.store.list('backups.velero.io').length, 1)
    assert.deepEqual((await journals(homelab)).map((j) => j.id), [started.runId])
    for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: TO, disk: TO, ready: true, cordoned: false}, name)
  })

  test('a Lease renewed by another holder: exit 6 before any write; an expired one is taken over', async (t) => {
    const homelab = await lab(t)
    const {api} = homelab
    const now = new Date()
    api.store.create({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {name: 'homelab-upgrade', namespace: 'kube-system'},
      spec: {holderIdentity: '20260101-000000-abcdef@elsewhere', leaseDurationSeconds: 60, acquireTime: now.toISOString(), renewTime: now.toISOString()},
    }, {source: 'test'})

    const locked = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes'])
    assert.equal(locked.exitCode, 6, `${locked.stdout}\n${locked.stderr}`)
    assert.match(`${locked.stdout}\n${locked.stderr}`, /holder 20260101-000000-abcdef@elsewhere/)
    assert.deepEqual(writes(homelab), [], describeWrites(writes(homelab)))
    assert.deepEqual(api.k3sLog, [])
    for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: FROM, disk: FROM, ready: true, cordoned: false}, name)

    // The other holder stopped renewing two minutes ago: its lock has expired.
    const stale = new Date(Date.now() - 120_000).toISOString()
    api.store.mutate('leases.coordination.k8s.io', 'kube-system', 'homelab-upgrade', (lease) => {
      lease.spec = {...lease.spec, renewTime: stale}
    }, {source: 'test'})
    const taken = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes'])
    assert.equal(taken.exitCode, 0, `${taken.stdout}\n${taken.stderr}`)
  })
})
