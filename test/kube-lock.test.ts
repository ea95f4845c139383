import assert from 'node:assert/strict'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, test} from 'node:test'

import {KubeClients, loadKubeConfig} from '../src/kube/client.js'
import {ClusterLock} from '../src/kube/lock.js'
import {LockHeldError} from '../src/errors.js'
import {SimKubeApi} from './sim/kube-api/index.js'

let api: SimKubeApi
let kube: KubeClients
before(async () => {
  api = await SimKubeApi.start({velero: false})
  const file = path.join(await mkdtemp(path.join(tmpdir(), 'lock-')), 'kubeconfig')
  await api.writeKubeconfig(file)
  kube = new KubeClients(loadKubeConfig({kubeconfig: file, env: {}}).kubeConfig)
})
after(() => api?.stop())

test('a second holder is refused while the lease is live; the lease is released after', async () => {
  const first = new ClusterLock({kube, holder: 'run-a@host'})
  await first.acquire()
  const lease = await kube.coordination.readNamespacedLease({name: 'homelab-upgrade', namespace: 'kube-system'})
  assert.equal(lease.spec?.holderIdentity, 'run-a@host')
  await assert.rejects(new ClusterLock({kube, holder: 'run-b@host'}).acquire(), (e: unknown) => e instanceof LockHeldError && /holder run-a@host/.test(e.message))
  await first.release()
  await assert.rejects(kube.coordination.readNamespacedLease({name: 'homelab-upgrade', namespace: 'kube-system'}), /404|not found/i)
})

test('a run whose lease is taken over is told once, so it can stop changing the cluster', async () => {
  const lost: string[] = []
  const lock = new ClusterLock({kube, holder: 'run-c@host', leaseDurationSeconds: 1, onLost: (reason) => lost.push(reason)})
  await lock.acquire()
  // Another process takes the Lease over (as after an expiry), bumping its resourceVersion.
  await api.store.mutate('leases.coordination.k8s.io', 'kube-system', 'homelab-upgrade', (o) => {
    ;(o.spec as Record<string, unknown>).holderIdentity = 'run-d@elsewhere'
  })
  const deadline = Date.now() + 5000
  while (lost.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  await lock.release()
  assert.equal(lost.length, 1)
  const lease = await kube.coordination.readNamespacedLease({name: 'homelab-upgrade', namespace: 'kube-system'})
  assert.equal(lease.spec?.holderIdentity, 'run-d@elsewhere', 'release must not delete a lease that is no longer ours')
})
