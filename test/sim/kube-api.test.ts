/**
 * Contract test of the simulated Kubernetes API, written with the real @kubernetes/client-node
 * 1.4 exactly as the product uses it. Each assertion states what a real kube-apiserver answers
 * (see ../shared/UPSTREAM.md); the simulation must answer the same.
 */
import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'
import * as k8s from '@kubernetes/client-node'
import {SimKubeApi} from './kube-api/index.js'

// client-node 1.4 sends every patch as application/json-patch+json unless told otherwise: the
// content type is chosen per call through a middleware option. The product does the same.
const strategicMerge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch)
const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)

interface Clients {
  kc: k8s.KubeConfig
  core: k8s.CoreV1Api
  policy: k8s.PolicyV1Api
  custom: k8s.CustomObjectsApi
  coordination: k8s.CoordinationV1Api
  ext: k8s.ApiextensionsV1Api
  objects: k8s.KubernetesObjectApi
}

function clients(api: SimKubeApi): Clients {
  const kc = new k8s.KubeConfig()
  kc.loadFromString(api.kubeconfigYaml())
  return {
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    policy: kc.makeApiClient(k8s.PolicyV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    coordination: kc.makeApiClient(k8s.CoordinationV1Api),
    ext: kc.makeApiClient(k8s.ApiextensionsV1Api),
    objects: k8s.KubernetesObjectApi.makeApiClient(kc),
  }
}

/** The ApiException a call rejects with, and its body parsed as the Status it must be. */
async function apiError(p: Promise<unknown>, code: number): Promise<k8s.V1Status> {
  const err = await p.then(
    () => assert.fail(`expected HTTP ${code}, the call succeeded`),
    (e: unknown) => e,
  )
  assert.ok(err instanceof k8s.ApiException, `expected ApiException, got ${String(err)}`)
  assert.equal(err.code, code)
  const status = JSON.parse(err.body as string) as k8s.V1Status
  assert.equal(status.kind, 'Status')
  assert.equal(status.apiVersion, 'v1')
  assert.equal(status.status, 'Failure')
  assert.equal(status.code, code)
  return status
}

interface WatchRun {
  events: Array<{type: string; object: k8s.KubernetesObject & {code?: number; reason?: string}}>
  done: Promise<unknown>
  abort(): void
}

async function startWatch(kc: k8s.KubeConfig, path: string, query: Record<string, string | number | boolean>): Promise<WatchRun> {
  const events: WatchRun['events'] = []
  let resolveDone!: (v: unknown) => void
  const done = new Promise((r) => (resolveDone = r))
  const controller = await new k8s.Watch(kc).watch(path, query, (type, object) => events.push({type, object}), (err) => resolveDone(err ?? null))
  return {events, done, abort: () => controller.abort()}
}

async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 3000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 15))
  }
}

describe('simulated kube-apiserver with the real client-node', () => {
  let api: SimKubeApi
  let c: Clients

  before(async () => {
    api = await SimKubeApi.start({crds: {velero: true, suc: false}, bookmarkIntervalMs: 50, velero: {startDelayMs: 10, backupDurationMs: 60}})
    api.nodes.add({name: 'server-1', role: 'server', internalIP: '127.0.0.11'})
    api.nodes.add({name: 'agent-1', role: 'agent', internalIP: '127.0.0.21'})
    api.nodes.add({name: 'agent-2', role: 'agent', internalIP: '127.0.0.22', arch: 'arm64'})
    c = clients(api)
  })

  after(async () => {
    await api.stop()
    assert.deepEqual(api.internalErrors, [])
  })

  describe('TLS and authentication', () => {
    it('serves a kubeconfig whose CA the client verifies; without the CA the TLS handshake fails', async () => {
      const yaml = api.kubeconfigYaml()
      assert.match(yaml, /certificate-authority-data: /)
      assert.doesNotMatch(yaml, /insecure-skip-tls-verify/)

      const bare = new k8s.KubeConfig()
      bare.loadFromOptions({
        clusters: [{name: 'sim', server: api.url, skipTLSVerify: false}],
        users: [{name: 'sim', token: api.token}],
        contexts: [{name: 'sim', cluster: 'sim', user: 'sim'}],
        currentContext: 'sim',
      })
      const err = await bare.makeApiClient(k8s.CoreV1Api).listNode().then(
        () => assert.fail('a client without the CA must not connect'),
        (e: unknown) => e as Error & {code?: string},
      )
      assert.match(`${err.code} ${err.message}`, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT|unable to verify/i)
    })

    it('answers 401 to a wrong token', async () => {
      const wrong = new k8s.KubeConfig()
      wrong.loadFromString(api.kubeconfigYaml().replace(api.token, 'not-the-token'))
      const err = await wrong.makeApiClient(k8s.CoreV1Api).listNode().then(
        () => assert.fail('expected 401'),
        (e: unknown) => e as k8s.ApiException<unknown>,
      )
      assert.equal(err.code, 401)
    })

    it('answers /readyz, /livez and /version', async () => {
      const health = new k8s.Health(c.kc)
      assert.equal(await health.readyz({}), true)
      assert.equal(await health.livez({}), true)
      api.setReadyz(false)
      assert.equal(await health.readyz({}), false)
      api.setReadyz(true)
      const version = await c.kc.makeApiClient(k8s.VersionApi).getCode()
      assert.equal(version.gitVersion, 'v1.31.4+k3s1')
      assert.equal(version.minor, '31')
    })
  })

  describe('nodes', () => {
    it('lists and gets nodes as k3s registers them', async () => {
      const list = await c.core.listNode()
      assert.deepEqual(list.items.map((n) => n.metadata?.name).sort(), ['agent-1', 'agent-2', 'server-1'])
      assert.match(list.metadata?.resourceVersion ?? '', /^\d+$/)
      const server = await c.core.readNode({name: 'server-1'})
      assert.equal(server.metadata?.labels?.['node-role.kubernetes.io/control-plane'], 'true')
      assert.equal(server.metadata?.labels?.['node-role.kubernetes.io/etcd'], 'true')
      assert.equal(server.metadata?.labels?.['node.kubernetes.io/instance-type'], 'k3s')
      assert.deepEqual(server.status?.addresses?.map((a) => [a.type, a.address]), [['InternalIP', '127.0.0.11'], ['Hostname', 'server-1']])
      assert.equal(server.status?.nodeInfo?.kubeletVersion, 'v1.31.4+k3s1')
      assert.equal(server.status?.conditions?.find((x) => x.type === 'Ready')?.status, 'True')
      const arm = await c.core.readNode({name: 'agent-2'})
      assert.equal(arm.status?.nodeInfo?.architecture, 'arm64')
      assert.equal(arm.metadata?.labels?.['kubernetes.io/arch'], 'arm64')
    })

    it('filters by label selectors (set-based too) and field selectors', async () => {
      const names = async (q: {labelSelector?: string; fieldSelector?: string}) => (await c.core.listNode(q)).items.map((n) => n.metadata?.name).sort()
      assert.deepEqual(await names({labelSelector: 'node-role.kubernetes.io/control-plane in (true)'}), ['server-1'])
      assert.deepEqual(await names({labelSelector: '!node-role.kubernetes.io/control-plane'}), ['agent-1', 'agent-2'])
      assert.deepEqual(await names({labelSelector: 'kubernetes.io/arch=amd64,node-role.kubernetes.io/master'}), ['server-1'])
      assert.deepEqual(await names({labelSelector: 'kubernetes.io/arch!=amd64'}), ['agent-2'])
      assert.deepEqual(await names({fieldSelector: 'metadata.name=agent-1'}), ['agent-1'])
      const bad = await apiError(c.core.listNode({fieldSelector: 'spec.nope=1'}), 400)
      assert.equal(bad.reason, 'BadRequest')
    })

    it('cordons by strategic-merge patch of spec.unschedulable: the scheduler adds the unschedulable taint, uncordon removes it', async () => {
      const cordoned = await c.core.patchNode({name: 'agent-1', body: {spec: {unschedulable: true}}}, strategicMerge)
      assert.equal(cordoned.spec?.unschedulable, true)
      await until('the unschedulable taint', async () =>
        (await c.core.readNode({name: 'agent-1'})).spec?.taints?.some((t) => t.key === 'node.kubernetes.io/unschedulable' && t.effect === 'NoSchedule'),
      )
      await c.core.patchNode({name: 'agent-1', body: {spec: {unschedulable: null}}}, strategicMerge)
      await until('the taint to go', async () => !(await c.core.readNode({name: 'agent-1'})).spec?.taints?.length)
      const patch = api.audit.matching({verb: 'patch', resource: 'nodes', name: 'agent-1'})[0]
      assert.equal(patch.contentType, 'application/strategic-merge-patch+json')
    })

    it('ignores .status in a patch of the main resource, and changes it through the status subresource', async () => {
      const before = await c.core.readNode({name: 'agent-2'})
      const patched = await c.core.patchNode(
        {name: 'agent-2', body: {metadata: {labels: {tier: 'edge'}}, status: {nodeInfo: {kubeletVersion: 'v9.9.9+k3s1'}}}},
        strategicMerge,
      )
      assert.equal(patched.metadata?.labels?.tier, 'edge')
      assert.equal(patched.status?.nodeInfo?.kubeletVersion, before.status?.nodeInfo?.kubeletVersion)
      const viaStatus = await c.core.patchNodeStatus({name: 'agent-2', body: {status: {nodeInfo: {kubeletVersion: 'v1.31.9+k3s1'}}, spec: {unschedulable: true}}}, mergePatch)
      assert.equal(viaStatus.status?.nodeInfo?.kubeletVersion, 'v1.31.9+k3s1')
      assert.notEqual(viaStatus.spec?.unschedulable, true, 'spec through /status is ignored')
    })

    it('json-patch is the default content type and needs an array', async () => {
      const ok = await c.core.patchNode({name: 'agent-2', body: [{op: 'add', path: '/metadata/labels/zone', value: 'b'}]})
      assert.equal(ok.metadata?.labels?.zone, 'b')
      const bad = await apiError(c.core.patchNode({name: 'agent-2', body: {spec: {unschedulable: true}}}), 400)
      assert.equal(bad.reason, 'BadRequest')
      const failed = await apiError(c.core.patchNode({name: 'agent-2', body: [{op: 'test', path: '/metadata/labels/zone', value: 'a'}]}), 422)
      assert.equal(failed.reason, 'Invalid')
    })

    it('refuses a stale resourceVersion on update with 409 Conflict', async () => {
      const node = await c.core.readNode({name: 'agent-1'})
      const stale = structuredClone(node)
      node.metadata!.labels = {...node.metadata!.labels, fresh: 'yes'}
      await c.core.replaceNode({name: 'agent-1', body: node})
      stale.metadata!.labels = {...stale.metadata!.labels, stale: 'yes'}
      const conflict = await apiError(c.core.replaceNode({name: 'agent-1', body: stale}), 409)
      assert.equal(conflict.reason, 'Conflict')
      assert.equal(conflict.message, 'Operation cannot be fulfilled on nodes "agent-1": the object has been modified; please apply your changes to the latest version and try again')
    })
  })

  describe('errors are Status objects', () => {
    it('404 for a missing object, with details', async () => {
      const s = await apiError(c.core.readNode({name: 'nope'}), 404)
      assert.equal(s.reason, 'NotFound')
      assert.equal(s.message, 'nodes "nope" not found')
      assert.deepEqual(s.details, {name: 'nope', kind: 'nodes'})
    })

    it('404 Status for an unknown group, version or resource', async () => {
      const s = await apiError(c.custom.listClusterCustomObject({group: 'nope.example.com', version: 'v1', plural: 'things'}), 404)
      assert.equal(s.reason, 'NotFound')
      const t = await apiError(c.custom.listClusterCustomObject({group: 'velero.io', version: 'v1', plural: 'things'}), 404)
      assert.equal(t.reason, 'NotFound')
    })

    it('409 AlreadyExists on create of an existing name', async () => {
      const body = {metadata: {name: 'dup'}}
      await c.core.createNamespace({body})
      const s = await apiError(c.core.createNamespace({body}), 409)
      assert.equal(s.reason, 'AlreadyExists')
      assert.equal(s.message, 'namespaces "dup" already exists')
    })

    it('404 for a namespaced object in a namespace that does not exist', async () => {
      const s = await apiError(
        c.coordination.createNamespacedLease({namespace: 'nowhere', body: {metadata: {name: 'x'}, spec: {holderIdentity: 'me'}}}),
        404,
      )
      assert.equal(s.message, 'namespaces "nowhere" not found')
    })
  })

  describe('watch', () => {
    it('resumes from a resourceVersion: later events arrive, earlier ones do not', async () => {
      await c.core.createNamespacedPod({namespace: 'default', body: {metadata: {name: 'w-before', labels: {w: '1'}}, spec: {containers: [{name: 'c', image: 'busybox'}]}}})
      const rv = (await c.core.listNamespacedPod({namespace: 'default', labelSelector: 'w=1'})).metadata!.resourceVersion!
      await c.core.createNamespacedPod({namespace: 'default', body: {metadata: {name: 'w-after', labels: {w: '1'}}, spec: {containers: [{name: 'c', image: 'busybox'}]}}})
      const w = await startWatch(c.kc, '/api/v1/namespaces/default/pods', {resourceVersion: rv, labelSelector: 'w=1'})
      await c.core.deleteNamespacedPod({name: 'w-before', namespace: 'default', gracePeriodSeconds: 0})
      await until('ADDED w-after and DELETED w-before', () =>
        w.events.some((e) => e.type === 'ADDED' && e.object.metadata?.name === 'w-after') &&
        w.events.some((e) => e.type === 'DELETED' && e.object.metadata?.name === 'w-before'),
      )
      assert.ok(!w.events.some((e) => e.type === 'ADDED' && e.object.metadata?.name === 'w-before'), 'nothing from before the resourceVersion')
      for (const e of w.events) assert.ok(Number(e.object.metadata?.resourceVersion) > Number(rv))
      w.abort()
    })

    it('sends BOOKMARK events when asked and ends at timeoutSeconds', async () => {
      const rv = (await c.core.listNode()).metadata!.resourceVersion!
      const w = await startWatch(c.kc, '/api/v1/nodes', {resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 1})
      const bookmark = await until('a bookmark', () => w.events.find((e) => e.type === 'BOOKMARK'))
      assert.match(bookmark.object.metadata?.resourceVersion ?? '', /^\d+$/)
      assert.equal(await w.done, null, 'the server ends the watch cleanly at timeoutSeconds')
    })

    it('answers a too-old resourceVersion with an ERROR event carrying 410 Expired, then ends the stream', async () => {
      const old = (await c.core.listNode()).metadata!.resourceVersion!
      await c.core.patchNode({name: 'server-1', body: {metadata: {annotations: {touched: '1'}}}}, strategicMerge)
      api.store.compact()
      const w = await startWatch(c.kc, '/api/v1/nodes', {resourceVersion: old})
      // client-node hands the ERROR event to the callback and then calls done(null): callers
      // must look at the event, relist, and watch again.
      assert.equal(await w.done, null)
      assert.equal(w.events.length, 1)
      assert.equal(w.events[0].type, 'ERROR')
      assert.equal(w.events[0].object.kind, 'Status')
      assert.equal(w.events[0].object.code, 410)
      assert.equal(w.events[0].object.reason, 'Expired')
      const fresh = (await c.core.listNode()).metadata!.resourceVersion!
      const again = await startWatch(c.kc, '/api/v1/nodes', {resourceVersion: fresh})
      await c.core.patchNode({name: 'server-1', body: {metadata: {annotations: {touched: '2'}}}}, strategicMerge)
      await until('MODIFIED after relist', () => again.events.some((e) => e.type === 'MODIFIED'))
      again.abort()
    })

    it("client-node's informer relists after a 410 and catches up with what it missed", async () => {
      const informer = k8s.makeInformer(c.kc, '/api/v1/nodes', () => c.core.listNode())
      const seen = new Set<string>()
      informer.on('add', (n) => seen.add(n.metadata!.name!))
      await informer.start()
      await until('the initial list', () => seen.has('agent-2'))
      // The informer's next watch arrives late; meanwhile a node joins and history is compacted.
      api.faults.add({verb: 'watch', resource: 'nodes', delayMs: 150})
      api.endWatches()
      await new Promise((r) => setTimeout(r, 30))
      api.nodes.add({name: 'late-joiner'})
      api.store.compact()
      await until('the informer to relist', () => seen.has('late-joiner'))
      const watches = api.audit.matching({verb: 'watch', resource: 'nodes'}).map((e) => e.query.resourceVersion)
      assert.ok(watches.length >= 2)
      await informer.stop()
      api.nodes.remove('late-joiner')
    })

    it('a watch without resourceVersion starts with ADDED for what exists', async () => {
      const w = await startWatch(c.kc, '/api/v1/nodes', {fieldSelector: 'metadata.name=agent-2'})
      const first = await until('initial ADDED', () => w.events[0])
      assert.equal(first.type, 'ADDED')
      assert.equal(first.object.metadata?.name, 'agent-2')
      w.abort()
    })
  })

  describe('pods: graceful deletion and eviction', () => {
    const pod = (name: string, labels: Record<string, string>, node = 'agent-1') =>
      api.pods.add({name, namespace: 'default', node, labels, owner: {kind: 'ReplicaSet', name: 'rs-x'}, terminationGracePeriodSeconds: 30})

    it('a deleted pod keeps a deletionTimestamp until its kubelet confirms; gracePeriodSeconds 0 removes it at once', async () => {
      pod('slow', {g: '1'})
      const deleting = await c.core.deleteNamespacedPod({name: 'slow', namespace: 'default'})
      assert.ok(deleting.metadata?.deletionTimestamp)
      assert.equal(deleting.metadata?.deletionGracePeriodSeconds, 30)
      assert.ok(await c.core.readNamespacedPod({name: 'slow', namespace: 'default'}))
      await until('the kubelet to confirm', () => !api.pods.get('default', 'slow'))
      pod('quick', {g: '1'})
      await c.core.deleteNamespacedPod({name: 'quick', namespace: 'default', gracePeriodSeconds: 0})
      await apiError(c.core.readNamespacedPod({name: 'quick', namespace: 'default'}), 404)
      // A new pod of the same name is a new object.
      const first = pod('again', {g: '1'})
      await c.core.deleteNamespacedPod({name: 'again', namespace: 'default', gracePeriodSeconds: 0})
      const second = pod('again', {g: '1'})
      assert.notEqual(first.metadata.uid, second.metadata.uid)
    })

    const eviction = (name: string) => ({name, namespace: 'default', body: {apiVersion: 'policy/v1', kind: 'Eviction', metadata: {name, namespace: 'default'}}})

    it('evicts with 201 when no budget forbids it; the pod then terminates', async () => {
      pod('free', {app: 'free'})
      const res = await c.core.createNamespacedPodEviction(eviction('free'))
      assert.ok(res)
      const entry = api.audit.matching({resource: 'pods', subresource: 'eviction', name: 'free'})[0]
      assert.equal(entry.code, 201)
      assert.equal(entry.verb, 'create')
      assert.ok(api.pods.get('default', 'free')?.metadata.deletionTimestamp)
      await until('the evicted pod to go', () => !api.pods.get('default', 'free'))
    })

    it('answers 429 with the upstream message while a PodDisruptionBudget allows no disruption', async () => {
      pod('web-1', {app: 'web'})
      pod('web-2', {app: 'web'}, 'agent-2')
      api.pdbs.add({name: 'web', namespace: 'default', selector: {app: 'web'}, minAvailable: 2})
      const pdb = await c.policy.readNamespacedPodDisruptionBudget({name: 'web', namespace: 'default'})
      assert.equal(pdb.status?.disruptionsAllowed, 0)
      assert.equal(pdb.status?.currentHealthy, 2)
      assert.equal(pdb.status?.desiredHealthy, 2)
      const s = await apiError(c.core.createNamespacedPodEviction(eviction('web-1')), 429)
      assert.equal(s.reason, 'TooManyRequests')
      assert.equal(s.message, "Cannot evict pod as it would violate the pod's disruption budget.")
      assert.deepEqual(s.details?.causes, [{reason: 'DisruptionBudget', message: 'The disruption budget web needs 2 healthy pods and has 2 currently'}])
      assert.equal(api.pods.get('default', 'web-1')?.metadata.deletionTimestamp, undefined, 'a refused eviction deletes nothing')

      // Lowering the budget lets exactly one eviction through.
      await c.policy.patchNamespacedPodDisruptionBudget({name: 'web', namespace: 'default', body: {spec: {minAvailable: 1}}}, mergePatch)
      await until('the budget to be recomputed', () => api.pdbs.get('default', 'web')?.status?.disruptionsAllowed === 1)
      await c.core.createNamespacedPodEviction(eviction('web-1'))
      await apiError(c.core.createNamespacedPodEviction(eviction('web-2')), 429)
    })

    it('answers 429 "still being processed" before the budget status is computed', async () => {
      api.controllers.disruption!.options.delayMs = 300
      try {
        pod('slowpdb-1', {app: 'slowpdb'})
        await c.policy.createNamespacedPodDisruptionBudget({namespace: 'default', body: {metadata: {name: 'slowpdb'}, spec: {selector: {matchLabels: {app: 'slowpdb'}}, maxUnavailable: 1}}})
        const s = await apiError(c.core.createNamespacedPodEviction(eviction('slowpdb-1')), 429)
        assert.equal(s.message, "Cannot evict pod as it would violate the pod's disruption budget.")
        assert.equal(s.details?.causes?.[0]?.message, 'The disruption budget slowpdb is still being processed by the server.')
        await until('the budget to be computed', () => api.pdbs.get('default', 'slowpdb')?.status?.observedGeneration === 1, 2000)
        await c.core.createNamespacedPodEviction(eviction('slowpdb-1'))
      } finally {
        api.controllers.disruption!.options.delayMs = 0
      }
    })

    it('refuses an Eviction whose name differs from the URL (400) and a pod under two budgets (500)', async () => {
      pod('two-1', {app: 'two'})
      const noName = await apiError(c.core.createNamespacedPodEviction({name: 'two-1', namespace: 'default', body: {apiVersion: 'policy/v1', kind: 'Eviction'}}), 400)
      assert.equal(noName.message, 'name in URL does not match name in Eviction object')
      api.pdbs.add({name: 'two-a', namespace: 'default', selector: {app: 'two'}, maxUnavailable: 1})
      api.pdbs.add({name: 'two-b', namespace: 'default', selector: {app: 'two'}, maxUnavailable: 1})
      const two = await apiError(c.core.createNamespacedPodEviction(eviction('two-1')), 500)
      assert.equal(two.message, 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.')
    })

    it('answers 404 for a missing pod', async () => {
      const s = await apiError(c.core.createNamespacedPodEviction(eviction('ghost')), 404)
      assert.equal(s.message, 'pods "ghost" not found')
    })

    it('only Running+Ready pods are protected: Pending evicts; unready is refused by default and allowed with AlwaysAllow', async () => {
      pod('db-1', {app: 'db'})
      api.pods.add({name: 'db-pending', namespace: 'default', labels: {app: 'db'}, phase: 'Pending'})
      api.pods.add({name: 'db-unready', namespace: 'default', node: 'agent-2', labels: {app: 'db'}, phase: 'Running', ready: false})
      api.pdbs.add({name: 'db', namespace: 'default', selector: {app: 'db'}, minAvailable: 2})
      assert.equal(api.pdbs.get('default', 'db')?.status?.currentHealthy, 1)
      await c.core.createNamespacedPodEviction(eviction('db-pending'))
      await apiError(c.core.createNamespacedPodEviction(eviction('db-unready')), 429)
      await c.policy.patchNamespacedPodDisruptionBudget({name: 'db', namespace: 'default', body: {spec: {unhealthyPodEvictionPolicy: 'AlwaysAllow'}}}, mergePatch)
      await until('the new generation to be observed', () => api.pdbs.get('default', 'db')?.status?.observedGeneration === 2)
      await c.core.createNamespacedPodEviction(eviction('db-unready'))
      await apiError(c.core.createNamespacedPodEviction(eviction('db-1')), 429)
    })

    it('lists pods of one node with the spec.nodeName field selector', async () => {
      pod('on-2', {sel: 'x'}, 'agent-2')
      const pods = await c.core.listPodForAllNamespaces({fieldSelector: 'spec.nodeName=agent-2', labelSelector: 'sel=x'})
      assert.deepEqual(pods.items.map((p) => p.metadata?.name), ['on-2'])
    })
  })

  describe('custom resources', () => {
    it('a Velero Backup created through CustomObjectsApi reaches Completed', async () => {
      const bsl = (await c.custom.getNamespacedCustomObject({group: 'velero.io', version: 'v1', namespace: 'velero', plural: 'backupstoragelocations', name: 'default'})) as k8s.KubernetesObject & {status: {phase: string}}
      assert.equal(bsl.status.phase, 'Available')
      await c.custom.createNamespacedCustomObject({
        group: 'velero.io',
        version: 'v1',
        namespace: 'velero',
        plural: 'backups',
        body: {apiVersion: 'velero.io/v1', kind: 'Backup', metadata: {name: 'pre-upgrade-test'}, spec: {includedNamespaces: ['kube-system'], ttl: '72h0m0s'}},
      })
      const done = await until('Completed', async () => {
        const b = (await c.custom.getNamespacedCustomObject({group: 'velero.io', version: 'v1', namespace: 'velero', plural: 'backups', name: 'pre-upgrade-test'})) as {status?: {phase?: string; completionTimestamp?: string}}
        return b.status?.phase === 'Completed' ? b : undefined
      })
      assert.ok(done.status?.completionTimestamp)
      const phases = api.changes.of('backups', 'pre-upgrade-test').map((ch) => ch.diff.phase?.[1]).filter(Boolean)
      assert.deepEqual(phases, ['New', 'InProgress', 'Completed'])
      assert.ok(api.changes.of('backups', 'pre-upgrade-test').slice(1).every((ch) => ch.source === 'controller:velero'))
    })

    it('serves a CRD once created; server-side apply with dryRun=All stores nothing; apply creates, updates and detects conflicts', async () => {
      await apiError(c.custom.listNamespacedCustomObject({group: 'upgrade.cattle.io', version: 'v1', namespace: 'default', plural: 'plans'}), 404)
      const {sucPlanCrd} = await import('./kube-api/crds.js')
      await c.ext.createCustomResourceDefinition({body: sucPlanCrd() as unknown as k8s.V1CustomResourceDefinition})
      const crd = await until('Established', async () => {
        const got = await c.ext.readCustomResourceDefinition({name: 'plans.upgrade.cattle.io'})
        return got.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True') ? got : undefined
      })
      assert.equal(crd.spec.names.kind, 'Plan')
      await c.core.createNamespace({body: {metadata: {name: 'system-upgrade'}}})

      const plan = {
        apiVersion: 'upgrade.cattle.io/v1',
        kind: 'Plan',
        metadata: {name: 'server-plan', namespace: 'system-upgrade'},
        spec: {concurrency: 1, cordon: true, version: 'v1.31.5+k3s1', serviceAccountName: 'system-upgrade', nodeSelector: {matchExpressions: [{key: 'node-role.kubernetes.io/control-plane', operator: 'In', values: ['true']}]}, upgrade: {image: 'rancher/k3s-upgrade'}},
      }
      const writesBefore = api.audit.writes().length
      const dry = await c.objects.patch(structuredClone(plan), undefined, 'All', 'homelab', true, k8s.PatchStrategy.ServerSideApply)
      assert.equal(dry.metadata?.name, 'server-plan')
      assert.equal(api.store.get('plans.upgrade.cattle.io', 'system-upgrade', 'server-plan'), undefined, 'dry run stores nothing')
      assert.equal(api.audit.writes().length, writesBefore, 'a dry run is not a write')
      const dryEntry = api.audit.writes({includeDryRun: true}).at(-1)!
      assert.equal(dryEntry.dryRun, true)
      assert.equal(dryEntry.contentType, 'application/apply-patch+yaml')
      assert.equal(dryEntry.fieldManager, 'homelab')

      const created = (await c.objects.patch(structuredClone(plan), undefined, undefined, 'homelab', true, k8s.PatchStrategy.ServerSideApply)) as k8s.KubernetesObject
      assert.equal(created.metadata?.managedFields?.[0]?.manager, 'homelab')
      assert.equal(created.metadata?.managedFields?.[0]?.operation, 'Apply')
      const changed = structuredClone(plan)
      changed.spec.version = 'v1.31.6+k3s1'
      const updated = (await c.objects.patch(changed, undefined, undefined, 'homelab', true, k8s.PatchStrategy.ServerSideApply)) as k8s.KubernetesObject & {spec: {version: string}}
      assert.equal(updated.spec.version, 'v1.31.6+k3s1')

      const other = structuredClone(plan)
      other.spec.concurrency = 3
      const conflict = await apiError(c.objects.patch(other, undefined, undefined, 'someone-else', undefined, k8s.PatchStrategy.ServerSideApply), 409)
      assert.match(conflict.message ?? '', /conflict with "homelab".*\.spec\.concurrency/)
      const forced = (await c.objects.patch(other, undefined, undefined, 'someone-else', true, k8s.PatchStrategy.ServerSideApply)) as k8s.KubernetesObject & {spec: {concurrency: number}}
      assert.equal(forced.spec.concurrency, 3)
    })

    it('validates custom resources against the CRD schema (422 Invalid) and prunes unknown fields with a warning', async () => {
      const bad = {apiVersion: 'upgrade.cattle.io/v1', kind: 'Plan', metadata: {name: 'bad', namespace: 'system-upgrade'}, spec: {concurrency: 'one'}}
      const s = await apiError(c.objects.create(bad), 422)
      assert.equal(s.reason, 'Invalid')
      assert.match(s.message ?? '', /^Plan\.upgrade\.cattle\.io "bad" is invalid: /)
      assert.match(s.message ?? '', /spec\.upgrade: Required value/)
      assert.match(s.message ?? '', /spec\.concurrency: Invalid value: "string": spec\.concurrency in body must be of type integer/)
      const pruned = (await c.objects.create({apiVersion: 'upgrade.cattle.io/v1', kind: 'Plan', metadata: {name: 'pruned', namespace: 'system-upgrade'}, spec: {upgrade: {image: 'x', env: [{name: 'A'}]}}} as k8s.KubernetesObject)) as k8s.KubernetesObject & {spec: {upgrade: Record<string, unknown>}}
      assert.equal(pruned.spec.upgrade.env, undefined, 'upstream calls it envs; env is pruned')
    })

    it('status written through the main resource of a CRD with a status subresource is ignored', async () => {
      const p = (await c.custom.patchNamespacedCustomObject(
        {group: 'upgrade.cattle.io', version: 'v1', namespace: 'system-upgrade', plural: 'plans', name: 'server-plan', body: {status: {latestVersion: 'v9.9.9-k3s1'}, metadata: {labels: {x: 'y'}}}},
        mergePatch,
      )) as {status?: {latestVersion?: string}; metadata: {labels: Record<string, string>}}
      assert.equal(p.metadata.labels.x, 'y')
      assert.equal(p.status?.latestVersion, undefined)
      await apiError(
        c.custom.patchNamespacedCustomObject({group: 'upgrade.cattle.io', version: 'v1', namespace: 'system-upgrade', plural: 'plans', name: 'server-plan', body: {metadata: {labels: {x: 'z'}}}}, strategicMerge),
        415,
      )
    })
  })

  describe('leases', () => {
    it('create, read, replace with optimistic concurrency, delete', async () => {
      const spec = {holderIdentity: 'run-1', leaseDurationSeconds: 30, renewTime: new k8s.V1MicroTime()}
      const lease = await c.coordination.createNamespacedLease({namespace: 'kube-system', body: {metadata: {name: 'homelab-upgrade'}, spec}})
      assert.equal(lease.spec?.holderIdentity, 'run-1')
      const read = await c.coordination.readNamespacedLease({name: 'homelab-upgrade', namespace: 'kube-system'})
      read.spec!.holderIdentity = 'run-2'
      await c.coordination.replaceNamespacedLease({name: 'homelab-upgrade', namespace: 'kube-system', body: read})
      read.spec!.holderIdentity = 'run-3'
      await apiError(c.coordination.replaceNamespacedLease({name: 'homelab-upgrade', namespace: 'kube-system', body: read}), 409)
      await c.coordination.deleteNamespacedLease({name: 'homelab-upgrade', namespace: 'kube-system'})
      await apiError(c.coordination.readNamespacedLease({name: 'homelab-upgrade', namespace: 'kube-system'}), 404)
    })
  })

  describe('availability', () => {
    it('setUnreachable refuses connections and drops watches, then serves again on the same port', async () => {
      const port = api.port
      const w = await startWatch(c.kc, '/api/v1/nodes', {})
      await until('the watch to start', () => w.events.length > 0)
      await api.setUnreachable(300)
      const dropped = await w.done
      assert.ok(dropped === null || dropped instanceof Error, 'the watch ended')
      const err = await c.core.listNode().then(
        () => assert.fail('the API must be unreachable'),
        (e: unknown) => e as Error & {code?: string},
      )
      assert.match(`${err.code} ${err.message}`, /ECONNREFUSED/)
      await until('the API to be back', async () => (await c.core.listNode().catch(() => undefined))?.items.length === 3, 3000)
      assert.equal(api.port, port)
      assert.deepEqual(api.changes.events().map((e) => e.event).filter((e) => e?.startsWith('api-')), ['api-down', 'api-up'])
    })
  })

  it('records every request in the audit log with verb, resource, code and body for writes', () => {
    const evictions = api.audit.matching({resource: 'pods', subresource: 'eviction'})
    assert.ok(evictions.length >= 5)
    assert.ok(evictions.every((e) => e.verb === 'create' && e.method === 'POST'))
    assert.ok(evictions.some((e) => e.code === 429 && e.reason === 'TooManyRequests'))
    const cordon = api.audit.matching({verb: 'patch', resource: 'nodes', name: 'agent-1'})[0]
    assert.deepEqual(cordon.body, {spec: {unschedulable: true}})
    assert.ok(api.audit.every((e) => e.startSeq < e.seq))
    const seqs = api.audit.map((e) => e.seq)
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b))
    assert.ok(api.audit.reads().every((e) => !['create', 'update', 'patch', 'delete', 'deletecollection'].includes(e.verb)))
  })
})
