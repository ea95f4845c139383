/** The simulated Velero server: phases of Backups and Restores, injected failures, storage locations. */
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'
import * as k8s from '@kubernetes/client-node'
import {SimKubeApi, type StoredObject} from './kube-api/index.js'

describe('simulated Velero', () => {
  let api: SimKubeApi
  let custom: k8s.CustomObjectsApi

  before(async () => {
    api = await SimKubeApi.start({crds: {velero: true, suc: false}, velero: {startDelayMs: 10, backupDurationMs: 40, restoreDurationMs: 40}})
    const kc = new k8s.KubeConfig()
    kc.loadFromString(api.kubeconfigYaml())
    custom = kc.makeApiClient(k8s.CustomObjectsApi)
  })
  after(async () => {
    await api.stop()
    assert.deepEqual(api.internalErrors, [])
  })

  const create = (plural: 'backups' | 'restores', name: string, spec: Record<string, unknown>) =>
    custom.createNamespacedCustomObject({group: 'velero.io', version: 'v1', namespace: 'velero', plural, body: {apiVersion: 'velero.io/v1', kind: plural === 'backups' ? 'Backup' : 'Restore', metadata: {name}, spec}})

  const settled = (plural: 'backups' | 'restores', name: string): Promise<StoredObject> =>
    api.waitFor(
      () => {
        const o = api.store.get(`${plural}.velero.io`, 'velero', name)
        return o && ['Completed', 'Failed', 'PartiallyFailed', 'FailedValidation'].includes(String(o.status?.phase)) ? o : undefined
      },
      {message: `${plural}/${name} to finish`},
    )

  it('moves a Backup New → InProgress → Completed with timestamps, progress and the location label', async () => {
    await create('backups', 'b1', {includedNamespaces: ['kube-system'], ttl: '72h0m0s'})
    const b = await settled('backups', 'b1')
    assert.equal(b.status?.phase, 'Completed')
    assert.ok(Date.parse(b.status?.startTimestamp) <= Date.parse(b.status?.completionTimestamp))
    assert.equal(b.status?.progress?.itemsBackedUp, b.status?.progress?.totalItems)
    assert.equal(b.spec?.storageLocation, 'default')
    assert.equal(b.metadata.labels?.['velero.io/storage-location'], 'default')
    const hours = (Date.parse(b.status?.expiration) - Date.parse(b.status?.startTimestamp)) / 3600_000
    assert.ok(Math.abs(hours - 72) < 0.01, `expiration follows ttl (${hours}h)`)
    assert.deepEqual(api.changes.of('backups', 'b1').map((c) => c.diff.phase?.[1]).filter(Boolean), ['New', 'InProgress', 'Completed'])
  })

  it('fails the next Backup (and only it) on request', async () => {
    api.velero!.failNextBackup('Failed', 'disk full')
    await create('backups', 'b2', {})
    const failed = await settled('backups', 'b2')
    assert.equal(failed.status?.phase, 'Failed')
    assert.equal(failed.status?.failureReason, 'disk full')
    api.velero!.failNextBackup('PartiallyFailed')
    await create('backups', 'b3', {})
    const partial = await settled('backups', 'b3')
    assert.equal(partial.status?.phase, 'PartiallyFailed')
    assert.equal(partial.status?.errors, 1)
    await create('backups', 'b4', {})
    assert.equal((await settled('backups', 'b4')).status?.phase, 'Completed')
  })

  it('a backup into an Unavailable location fails; a missing location fails validation', async () => {
    api.velero!.setLocationPhase('Unavailable')
    const bsl = (await custom.getNamespacedCustomObject({group: 'velero.io', version: 'v1', namespace: 'velero', plural: 'backupstoragelocations', name: 'default'})) as {status: {phase: string; message?: string}}
    assert.equal(bsl.status.phase, 'Unavailable')
    assert.ok(bsl.status.message)
    await create('backups', 'b5', {})
    const b5 = await settled('backups', 'b5')
    assert.equal(b5.status?.phase, 'Failed')
    assert.match(String(b5.status?.failureReason), /unavailable/)
    api.velero!.setLocationPhase('Available')
    await create('backups', 'b6', {storageLocation: 'elsewhere'})
    const b6 = await settled('backups', 'b6')
    assert.equal(b6.status?.phase, 'FailedValidation')
    assert.match(String(b6.status?.validationErrors?.[0]), /elsewhere/)
  })

  it('restores from a completed backup; refuses a missing or failed one; fails the next restore on request', async () => {
    await create('restores', 'r1', {backupName: 'b1', existingResourcePolicy: 'update', includedNamespaces: ['kube-system']})
    const r1 = await settled('restores', 'r1')
    assert.equal(r1.status?.phase, 'Completed')
    assert.equal(r1.status?.progress?.itemsRestored, r1.status?.progress?.totalItems)
    await create('restores', 'r2', {backupName: 'nope'})
    assert.equal((await settled('restores', 'r2')).status?.phase, 'FailedValidation')
    await create('restores', 'r3', {backupName: 'b2'})
    assert.equal((await settled('restores', 'r3')).status?.phase, 'FailedValidation')
    api.velero!.failNextRestore()
    await create('restores', 'r4', {backupName: 'b1'})
    assert.equal((await settled('restores', 'r4')).status?.phase, 'Failed')
  })

  it('makes only the product\'s own requests audit entries; its changes are attributed to controller:velero', () => {
    const writes = api.audit.writes()
    assert.ok(writes.every((w) => w.verb === 'create' && (w.resource === 'backups' || w.resource === 'restores')))
    const velero = api.changes.filter((c) => c.source === 'controller:velero')
    assert.ok(velero.length > 10)
  })
})
