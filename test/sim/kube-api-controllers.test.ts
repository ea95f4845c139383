/**
 * The simulated cluster's moving parts: the control server the fake k3s binaries report to,
 * node readiness, the scheduler, kubelets, workload controllers, the disruption controller and
 * garbage collection, and that `stop()` leaves nothing running.
 */
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'
import * as k8s from '@kubernetes/client-node'
import {SimKubeApi, type StoredObject} from './kube-api/index.js'

const ready = (o: StoredObject | undefined): string | undefined => (o?.status?.conditions as Array<{type: string; status: string}> | undefined)?.find((c) => c.type === 'Ready')?.status

async function post(url: string, body?: unknown, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(url, {method: 'POST', body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), headers: {'content-type': 'application/json', ...headers}})
  await res.arrayBuffer()
  return res.status
}

describe('node lifecycle through the control server', () => {
  let api: SimKubeApi

  before(async () => {
    api = await SimKubeApi.start({crds: {velero: false, suc: false}, nodeDefaults: {readyDelayMs: 120}})
    api.nodes.add({name: 's1', role: 'server'})
    api.nodes.add({name: 's2', role: 'server'})
    api.nodes.add({name: 'a1', role: 'agent'})
  })
  after(() => api.stop())

  it('k3s-started: NotReady at the old version, then Ready at the reported version after the node delay', async () => {
    const t0 = Date.now()
    assert.equal(await post(`${api.controlUrl}/nodes/s1/k3s-started`, {version: 'v1.31.5+k3s1', arch: 'amd64', role: 'server'}), 204)
    const node = api.nodes.get('s1')
    assert.equal(ready(node), 'False')
    assert.equal((node?.status?.conditions as Array<{type: string; reason: string}>).find((c) => c.type === 'Ready')?.reason, 'KubeletNotReady')
    assert.equal(node?.status?.nodeInfo?.kubeletVersion, 'v1.31.4+k3s1')
    await api.waitFor(() => ready(api.nodes.get('s1')) === 'True', {message: 's1 Ready'})
    assert.ok(Date.now() - t0 >= 100, 'Ready only after the configured delay')
    assert.equal(api.nodes.get('s1')?.status?.nodeInfo?.kubeletVersion, 'v1.31.5+k3s1')
    assert.equal(api.nodes.get('s1')?.status?.nodeInfo?.kubeProxyVersion, 'v1.31.5+k3s1')

    const started = api.changes.events('k3s-started').find((e) => e.name === 's1')!
    const becameReady = api.changes.of('nodes', 's1').find((ch) => ch.type === 'MODIFIED' && ch.diff.ready?.[1] === 'True')!
    assert.ok(started.seq < becameReady.seq)
    assert.deepEqual(becameReady.diff.kubeletVersion, ['v1.31.4+k3s1', 'v1.31.5+k3s1'])
    assert.match(becameReady.summary, /ready False→True/)
    assert.equal(api.k3sLog.at(-1)?.version, 'v1.31.5+k3s1')
  })

  it('k3s-started without its release\'s images (air-gapped): the kubelet version moves, the Node stays NotReady on the pause image', async () => {
    const condition = () => (api.nodes.get('a1')?.status?.conditions as Array<{type: string; status: string; reason: string; message: string}>).find((c) => c.type === 'Ready')!
    const missing = {mode: 'archive', imported: ['k3s-airgap-images-amd64.tar.zst'], ready: false}
    assert.equal(await post(`${api.controlUrl}/nodes/a1/k3s-started`, {version: 'v1.31.5+k3s1', arch: 'amd64', role: 'agent', images: missing}), 204)
    await api.waitFor(() => api.nodes.get('a1')?.status?.nodeInfo?.kubeletVersion === 'v1.31.5+k3s1', {message: 'a1 kubelet at the new version'})
    await new Promise((r) => setTimeout(r, 200))
    assert.equal(condition().status, 'False')
    assert.equal(condition().reason, 'KubeletNotReady')
    assert.match(condition().message, /NetworkPluginNotReady/)
    assert.ok(condition().message.includes('failed to pull image "docker.io/rancher/mirrored-pause:3.6"'), condition().message)
    assert.match(condition().message, /air-gapped: no images archive for v1\.31\.5\+k3s1 linux\/amd64/)
    assert.deepEqual(api.k3sLog.at(-1)?.images, missing)
    assert.deepEqual(api.changes.events('k3s-started').at(-1)?.data?.images, missing)

    // Restarted with its images in place (or pulling them), it turns Ready.
    assert.equal(await post(`${api.controlUrl}/nodes/a1/k3s-started`, {version: 'v1.31.5+k3s1', arch: 'amd64', role: 'agent', images: {...missing, ready: true}}), 204)
    await api.waitFor(() => ready(api.nodes.get('a1')) === 'True', {message: 'a1 Ready'})
    assert.equal(condition().reason, 'KubeletReady')
    assert.equal(await post(`${api.controlUrl}/nodes/a1/k3s-started`, {version: 'v1.31.5+k3s1', images: {mode: 'pull', imported: [], ready: true}}), 204)
    await api.waitFor(() => ready(api.nodes.get('a1')) === 'True', {message: 'a1 Ready (pull)'})
    for (const images of [{mode: 'offline', imported: [], ready: false}, {mode: 'archive', imported: 'x', ready: false}, {mode: 'pull', imported: []}, null]) {
      assert.equal(await post(`${api.controlUrl}/nodes/a1/k3s-started`, {version: 'v1.31.5+k3s1', images}), 400, JSON.stringify(images))
    }
  })

  it('a node told neverReady stays NotReady; behaviour can change at any time', async () => {
    api.nodes.behave('s2', {neverReady: true})
    assert.equal(await post(`${api.controlUrl}/nodes/s2/k3s-started`, {version: 'v1.31.5+k3s1', arch: 'amd64', role: 'server'}), 204)
    await new Promise((r) => setTimeout(r, 250))
    assert.equal(ready(api.nodes.get('s2')), 'False')
    assert.equal(api.nodes.get('s2')?.status?.nodeInfo?.kubeletVersion, 'v1.31.4+k3s1')
    api.nodes.behave('s2', {neverReady: false, readyDelayMs: 10})
    await post(`${api.controlUrl}/nodes/s2/k3s-started`, {version: 'v1.31.4+k3s1', arch: 'amd64', role: 'server'})
    await api.waitFor(() => ready(api.nodes.get('s2')) === 'True', {message: 's2 Ready'})
  })

  it('k3s-stopped makes Ready Unknown and taints the node unreachable; the scheduler taint follows readiness', async () => {
    assert.equal(await post(`${api.controlUrl}/nodes/a1/k3s-stopped`, {}), 204)
    await api.waitFor(() => ready(api.nodes.get('a1')) === 'Unknown')
    await api.waitFor(() => (api.nodes.get('a1')?.spec?.taints as Array<{key: string}> | undefined)?.some((t) => t.key === 'node.kubernetes.io/unreachable'))
    await post(`${api.controlUrl}/nodes/a1/k3s-started`, {version: 'v1.31.4+k3s1', arch: 'amd64', role: 'agent'})
    await api.waitFor(() => ready(api.nodes.get('a1')) === 'True' && !api.nodes.get('a1')?.spec?.taints)
  })

  it('rejects malformed reports and registers an unknown node', async () => {
    assert.equal(await post(`${api.controlUrl}/nodes/a1/k3s-started`, '{nope'), 400)
    assert.equal(await post(`${api.controlUrl}/nodes/a1/k3s-started`, {arch: 'amd64'}), 400)
    assert.equal(await post(`${api.controlUrl}/nodes/a1/reboot`, {}), 404)
    assert.equal(await post(`${api.controlUrl}/nodes/a9/k3s-started`, {version: 'v1.31.4+k3s1', arch: 'arm64', role: 'agent'}), 204)
    const a9 = api.nodes.get('a9')
    assert.equal(a9?.metadata.labels?.['kubernetes.io/arch'], 'arm64')
    await api.waitFor(() => ready(api.nodes.get('a9')) === 'True')
  })
})

describe('readyDelayFrom: service-manager', () => {
  it('counts the delay from the job the start report names, and from the report without one', async () => {
    const api = await SimKubeApi.start({crds: {velero: false, suc: false}, nodeDefaults: {readyDelayMs: 1500, readyDelayFrom: 'service-manager'}})
    try {
      api.nodes.add({name: 'early', role: 'agent'})
      api.nodes.add({name: 'plain', role: 'agent'})
      const t0 = Date.now()
      // The service manager took the restart 1.4 s ago (a slow stop and start): 0.1 s are left.
      await post(`${api.controlUrl}/nodes/early/k3s-started`, {version: 'v1.31.5+k3s1', role: 'agent'}, {'x-homelab-sim-job-started-ms': String(t0 - 1400)})
      await post(`${api.controlUrl}/nodes/plain/k3s-started`, {version: 'v1.31.5+k3s1', role: 'agent'})
      await api.waitFor(() => ready(api.nodes.get('early')) === 'True', {message: 'early Ready'})
      assert.ok(Date.now() - t0 < 1200, `early Ready after ${Date.now() - t0} ms, not the whole 1.5 s`)
      assert.equal(ready(api.nodes.get('plain')), 'False', 'no job time: the whole delay from the report')
      await api.waitFor(() => ready(api.nodes.get('plain')) === 'True', {message: 'plain Ready'})
      assert.ok(Date.now() - t0 >= 1400)
    } finally {
      await api.stop()
    }
  })
})

describe('the only server restarting takes the API down', () => {
  it('apiDownOnServerRestartMs: unreachable after k3s-started on the single server, back on the same port', async () => {
    const api = await SimKubeApi.start({crds: {velero: false, suc: false}, apiDownOnServerRestartMs: 200, nodeDefaults: {readyDelayMs: 50}})
    try {
      api.nodes.add({name: 'solo', role: 'server'})
      const kc = new k8s.KubeConfig()
      kc.loadFromString(api.kubeconfigYaml())
      const core = kc.makeApiClient(k8s.CoreV1Api)
      const port = api.port
      await post(`${api.controlUrl}/nodes/solo/k3s-started`, {version: 'v1.32.0+k3s1', arch: 'amd64', role: 'server'})
      await api.waitFor(() => !api.reachable, {message: 'API down'})
      await assert.rejects(core.listNode(), /ECONNREFUSED/)
      await api.waitFor(() => api.reachable, {message: 'API up'})
      assert.equal(api.port, port)
      await api.waitFor(() => ready(api.nodes.get('solo')) === 'True')
      const version = await kc.makeApiClient(k8s.VersionApi).getCode()
      assert.equal(version.gitVersion, 'v1.32.0+k3s1', '/version follows the server that answers')
      const ev = api.changes.events().map((e) => e.event)
      assert.deepEqual(ev, ['k3s-started', 'api-down', 'api-up'])
    } finally {
      await api.stop()
    }
  })
})

describe('workloads, scheduling and disruption budgets', () => {
  let api: SimKubeApi

  before(async () => {
    api = await SimKubeApi.start({crds: {velero: false, suc: false}, controllers: {kubelet: {podStartupDelayMs: 20, terminationDelayMs: 30}}})
    api.nodes.add({name: 's1', role: 'server'})
    api.nodes.add({name: 'a1'})
    api.nodes.add({name: 'a2'})
    api.nodes.add({name: 'a3', unschedulable: true})
  })
  after(() => api.stop())

  const podsOf = (selector: string) => api.pods.list({labelSelector: selector}).filter((p) => !p.metadata.deletionTimestamp)
  const readyPods = (selector: string) => podsOf(selector).filter((p) => ready(p) === 'True')

  it('a Deployment gets a ReplicaSet whose pods are spread over schedulable Ready nodes and become Ready', async () => {
    api.workloads.addDeployment({name: 'web', namespace: 'default', replicas: 3})
    await api.waitFor(() => readyPods('app=web').length === 3, {message: '3 web pods Ready'})
    const nodes = podsOf('app=web').map((p) => p.spec?.nodeName).sort()
    assert.deepEqual(nodes, ['a1', 'a2', 's1'], 'least loaded first; the cordoned a3 gets none')
    const pod = podsOf('app=web')[0]
    assert.equal(pod.metadata.ownerReferences?.[0]?.kind, 'ReplicaSet')
    assert.match(pod.metadata.name, /^web-[a-z0-9]+-[a-z0-9]{5}$/)
    await api.waitFor(() => api.store.get('deployments.apps', 'default', 'web')?.status?.availableReplicas === 3)
    const dep = api.store.get('deployments.apps', 'default', 'web')!
    assert.equal((dep.status?.conditions as Array<{type: string; status: string}>).find((c) => c.type === 'Available')?.status, 'True')
  })

  it('an evicted pod is replaced on another schedulable node with a new name and UID', async () => {
    await api.waitFor(() => api.store.get('nodes', 'a3')?.spec?.taints)
    const kc = new k8s.KubeConfig()
    kc.loadFromString(api.kubeconfigYaml())
    const core = kc.makeApiClient(k8s.CoreV1Api)
    await core.patchNode({name: 'a1', body: {spec: {unschedulable: true}}}, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch))
    const victim = podsOf('app=web').find((p) => p.spec?.nodeName === 'a1')!
    await core.createNamespacedPodEviction({name: victim.metadata.name, namespace: 'default', body: {apiVersion: 'policy/v1', kind: 'Eviction', metadata: {name: victim.metadata.name, namespace: 'default'}}})
    await api.waitFor(() => !api.pods.get('default', victim.metadata.name) && readyPods('app=web').length === 3, {message: 'replacement Ready'})
    const placed = podsOf('app=web').map((p) => p.spec?.nodeName)
    assert.ok(!placed.includes('a1') && !placed.includes('a3'), `no pod on cordoned nodes: ${placed.join(',')}`)
    assert.ok(!podsOf('app=web').some((p) => p.metadata.uid === victim.metadata.uid))
  })

  it('a DaemonSet runs one pod per node, cordoned ones included, and follows new nodes', async () => {
    api.workloads.addDaemonSet({name: 'svclb', namespace: 'kube-system'})
    await api.waitFor(() => readyPods('app=svclb').length === 4, {message: '4 daemon pods'})
    assert.deepEqual(podsOf('app=svclb').map((p) => p.spec?.nodeName).sort(), ['a1', 'a2', 'a3', 's1'])
    assert.ok(podsOf('app=svclb').every((p) => p.metadata.ownerReferences?.[0]?.kind === 'DaemonSet'))
    api.nodes.add({name: 'a4'})
    await api.waitFor(() => readyPods('app=svclb').length === 5)
    await api.waitFor(() => api.store.get('daemonsets.apps', 'kube-system', 'svclb')?.status?.numberReady === 5)
  })

  it('pods on a node that goes NotReady become unready; deletions wait for the kubelet to come back', async () => {
    const pod = api.pods.add({name: 'stuck', namespace: 'default', node: 'a2', labels: {app: 'stuck'}})
    api.nodes.setReady('a2', false)
    await api.waitFor(() => ready(api.pods.get('default', 'stuck')) === 'False', {message: 'pod unready with its node'})
    const kc = new k8s.KubeConfig()
    kc.loadFromString(api.kubeconfigYaml())
    await kc.makeApiClient(k8s.CoreV1Api).deleteNamespacedPod({name: 'stuck', namespace: 'default'})
    await new Promise((r) => setTimeout(r, 150))
    assert.equal(api.pods.get('default', 'stuck')?.metadata.uid, pod.metadata.uid, 'no kubelet, no confirmation')
    api.nodes.setReady('a2', true)
    await api.waitFor(() => !api.pods.get('default', 'stuck'), {message: 'deletion confirmed'})
  })

  it('computes PDB status from percentages and controller scale', async () => {
    await api.waitFor(() => readyPods('app=web').length === 3)
    const byMax = api.pdbs.add({name: 'web-max', namespace: 'default', selector: {app: 'web'}, maxUnavailable: '50%'})
    assert.deepEqual(
      {expected: byMax.status?.expectedPods, desired: byMax.status?.desiredHealthy, healthy: byMax.status?.currentHealthy, allowed: byMax.status?.disruptionsAllowed},
      {expected: 3, desired: 1, healthy: 3, allowed: 2},
    )
    api.store.delete('poddisruptionbudgets.policy', 'default', 'web-max')
    const byMin = api.pdbs.add({name: 'web-min', namespace: 'default', selector: {matchExpressions: [{key: 'app', operator: 'In', values: ['web']}]}, minAvailable: '100%'})
    assert.equal(byMin.status?.desiredHealthy, 3)
    assert.equal(byMin.status?.disruptionsAllowed, 0)
    assert.equal((byMin.status?.conditions as Array<{type: string; status: string}>)[0].status, 'False')
    api.store.delete('poddisruptionbudgets.policy', 'default', 'web-min')
  })

  it('deleting a ReplicaSet garbage-collects its pods; deleting a namespace empties it first', async () => {
    api.workloads.addReplicaSet({name: 'pinned', namespace: 'team', podsOn: ['a2', 'a4']})
    assert.equal(podsOf('app=pinned').length, 2)
    assert.deepEqual(podsOf('app=pinned').map((p) => p.spec?.nodeName).sort(), ['a2', 'a4'])
    await new Promise((r) => setTimeout(r, 60))
    assert.equal(podsOf('app=pinned').length, 2, 'the ReplicaSet keeps the pods it was given')
    const kc = new k8s.KubeConfig()
    kc.loadFromString(api.kubeconfigYaml())
    await kc.makeApiClient(k8s.AppsV1Api).deleteNamespacedReplicaSet({name: 'pinned', namespace: 'team'})
    await api.waitFor(() => api.pods.list({namespace: 'team'}).length === 0, {message: 'dependents gone'})
    api.pods.add({name: 'leftover', namespace: 'team', node: 'a4'})
    await kc.makeApiClient(k8s.CoreV1Api).deleteNamespace({name: 'team'})
    assert.equal(api.store.get('namespaces', 'team')?.status?.phase, 'Terminating')
    await api.waitFor(() => !api.store.get('namespaces', 'team'), {message: 'namespace gone'})
  })

  it('a pod created through the API without a node is scheduled, then started by the kubelet', async () => {
    const kc = new k8s.KubeConfig()
    kc.loadFromString(api.kubeconfigYaml())
    const created = await kc.makeApiClient(k8s.CoreV1Api).createNamespacedPod({namespace: 'default', body: {metadata: {name: 'solo'}, spec: {containers: [{name: 'c', image: 'busybox'}]}}})
    assert.equal(created.status?.phase, 'Pending')
    assert.equal(created.spec?.terminationGracePeriodSeconds, 30, 'defaulted')
    await api.waitFor(() => ready(api.pods.get('default', 'solo')) === 'True')
    assert.ok(['s1', 'a2', 'a4'].includes(String(api.pods.get('default', 'solo')?.spec?.nodeName)))
  })

  it('reports no internal errors', () => {
    assert.deepEqual(api.internalErrors, [])
  })
})

describe('stop()', () => {
  it('leaves no timer, server or socket behind', async () => {
    const count = () => {
      const counts: Record<string, number> = {}
      for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1
      return counts
    }
    await new Promise((r) => setTimeout(r, 20))
    const before = count()
    const api = await SimKubeApi.start({nodeDefaults: {readyDelayMs: 5000}})
    api.nodes.add({name: 'n1', role: 'server'})
    api.workloads.addDeployment({name: 'x', replicas: 2})
    api.nodes.k3sStarted('n1', {version: 'v1.31.5+k3s1'})
    const kc = new k8s.KubeConfig()
    kc.loadFromString(api.kubeconfigYaml())
    let ended = false
    await new k8s.Watch(kc).watch('/api/v1/pods', {allowWatchBookmarks: true}, () => {}, () => (ended = true))
    await api.stop()
    await new Promise((r) => setTimeout(r, 50))
    assert.equal(ended, true, 'open watches end')
    const afterStop = count()
    for (const kind of ['Timeout', 'TCPServerWrap', 'TCPSocketWrap']) assert.equal(afterStop[kind] ?? 0, before[kind] ?? 0, `${kind} left behind`)
  })
})
