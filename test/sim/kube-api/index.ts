/**
 * The simulated Kubernetes API server of the simulated homelab: HTTPS with a fresh CA and a
 * bearer token, served to the real @kubernetes/client-node unchanged, with the controllers a k3s
 * cluster runs (scheduler, kubelets, disruption, ReplicaSet/Deployment/DaemonSet, garbage
 * collection), Velero, and the control server the fake k3s binaries (and kubelets) report to. A
 * kubeadm cluster's own objects (kubeadm-config, static pods, kube-proxy, CoreDNS) come from
 * `api.kubeadm.init()`.
 *
 *   const api = await SimKubeApi.start({crds: {velero: true, suc: false}})
 *   api.nodes.add({name: 'server-1', role: 'server'})
 *   await api.writeKubeconfig(path)
 *   … run the product …
 *   api.audit.writes()  // what it did, in order
 *   await api.stop()
 */
import {writeFile} from 'node:fs/promises'
import {randomBytes, randomUUID} from 'node:crypto'
import {stringify as toYaml} from 'yaml'
import {VeleroSim, type VeleroOptions} from '../velero.js'
import {ControlServer} from './control-server.js'
import {CrdController} from './controllers/apiextensions.js'
import type {Controller, ControllerContext} from './controllers/base.js'
import {DisruptionController, type DisruptionOptions} from './controllers/disruption.js'
import {GarbageCollector} from './controllers/garbage.js'
import {KubeadmCluster} from './kubeadm.js'
import {Kubelet, type KubeletOptions} from './controllers/kubelet.js'
import {Scheduler, type SchedulerOptions} from './controllers/scheduler.js'
import {ServiceAccountController} from './controllers/serviceaccounts.js'
import {DaemonSetController, DeploymentController, ReplicaSetController} from './controllers/workloads.js'
import {sucPlanCrd, veleroCrds} from './crds.js'
import {type AddNodeOptions, type K3sEvent, type K3sStartInfo, type NodeBehaviour, NodeLifecycle} from './nodes.js'
import {ownerReferenceTo, setCondition} from './objects.js'
import {AuditLog, ChangeLog, Sequencer} from './recorder.js'
import {ResourceRegistry} from './resources.js'
import {ApiServer, type Fault} from './server.js'
import {ObjectStore} from './store.js'
import {Timers} from './timers.js'
import {makeServerTls} from './tls.js'
import {type Dict, type KubeObject, type OwnerReference, type StoredObject, nowIso, randomSuffix} from './types.js'

export type {AuditEntry, AuditFilter, ChangeEntry} from './recorder.js'
export type {AddNodeOptions, K3sEvent, K3sStartImages, K3sStartInfo, NodeBehaviour, NodeRole, Arch} from './nodes.js'
export {missingImagesMessage} from './nodes.js'
export type {Fault} from './server.js'
export type {KubeadmInitOptions, KubeadmState, SkewViolation} from './kubeadm.js'
export {KubeadmCluster}
export type {Dict, KubeObject, StoredObject} from './types.js'
export type {Status} from './status.js'
export type {VeleroOptions, VeleroFailure} from '../velero.js'
export {AuditLog, ChangeLog, ObjectStore, VeleroSim}

export interface SimKubeApiOptions {
  /** Bearer token clients must send (default: random). */
  token?: string
  /** Version the apiserver reports before any server node reports one, and the default node version. */
  version?: string
  /** Pre-installed CRDs (default both true). */
  crds?: {velero?: boolean; suc?: boolean}
  /** Extra namespaces to create at start (default, kube-system, kube-public, kube-node-lease always exist). */
  namespaces?: string[]
  /** Watch events kept for resuming watches; older resourceVersions get 410 Gone (default 1000). */
  watchHistorySize?: number
  /** Interval of BOOKMARK events on watches that ask for them (default 1000 ms). */
  bookmarkIntervalMs?: number
  /**
   * When the k3s serving the API endpoint restarts, the API is unreachable this long (0, the
   * default, keeps it up). The endpoint is `apiEndpointNode`, or else the only server node, if
   * there is exactly one.
   */
  apiDownOnServerRestartMs?: number
  apiEndpointNode?: string
  /** Defaults for every node's behaviour (see `nodes.behave`). */
  nodeDefaults?: Partial<NodeBehaviour>
  /** Each controller can be left out (`false`) or tuned. */
  controllers?: {
    scheduler?: false | Partial<SchedulerOptions>
    kubelet?: false | Partial<KubeletOptions>
    disruption?: false | Partial<DisruptionOptions>
    replicaSets?: false
    deployments?: false
    daemonSets?: false
    garbageCollector?: false
  }
  /** The simulated Velero server (needs `crds.velero`); `false` leaves it out. */
  velero?: false | Partial<VeleroOptions>
}

export interface AddPodOptions {
  name: string
  namespace?: string
  /** Node it runs on; omitted, the scheduler binds it. */
  node?: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  /** Default Running (Pending when no node). */
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed'
  /** Ready condition (default true when Running). */
  ready?: boolean
  /** Controller owner by kind and name (its uid is looked up, or invented if it does not exist), or a full reference. */
  owner?: {kind: string; name: string; apiVersion?: string; uid?: string}
  /** Adds an emptyDir volume (kubectl drain needs --delete-emptydir-data for it). */
  emptyDir?: boolean
  /** A static pod's mirror (annotation `kubernetes.io/config.mirror`). */
  mirror?: boolean
  terminationGracePeriodSeconds?: number
  containers?: Dict[]
  volumes?: Dict[]
  tolerations?: Dict[]
  /** The kubelet leaves phase/readiness alone (default: true when phase or ready is given). */
  pinned?: boolean
}

export interface AddPdbOptions {
  name: string
  namespace?: string
  /** matchLabels shorthand, or a full LabelSelector (`{matchLabels, matchExpressions}`). */
  selector: Record<string, string> | {matchLabels?: Record<string, string>; matchExpressions?: Dict[]}
  minAvailable?: number | string
  maxUnavailable?: number | string
  unhealthyPodEvictionPolicy?: 'IfHealthyBudget' | 'AlwaysAllow'
}

export interface WorkloadOptions {
  name: string
  namespace?: string
  /** Pod labels and selector (default `{app: <name>}`). */
  labels?: Record<string, string>
  nodeSelector?: Record<string, string>
  tolerations?: Dict[]
  emptyDir?: boolean
  terminationGracePeriodSeconds?: number
  containers?: Dict[]
}

export interface ReplicaSetOptions extends WorkloadOptions {
  replicas?: number
  /** Create the pods right away, Running and Ready, on these nodes (replicas defaults to their number). */
  podsOn?: string[]
  /** Owner Deployment name (only recorded in ownerReferences; no Deployment is simulated for it). */
}

export interface DeploymentOptions extends WorkloadOptions {
  replicas?: number
}

export interface KubeconfigOptions {
  /** Context, cluster and user name stem (default `homelab-sim`). */
  context?: string
  /** Default namespace of the context. */
  namespace?: string
}

export interface WaitOptions {
  timeoutMs?: number
  message?: string
}

const defaultVersion = 'v1.31.4+k3s1'

export class SimKubeApi {
  readonly token: string
  readonly caPem: string
  readonly registry: ResourceRegistry
  /** Direct access to the objects (no audit, no API semantics): for tests and simulated components. */
  readonly store: ObjectStore
  /** Every HTTP request to the API, in order. */
  readonly audit = new AuditLog()
  /** Every change to stored objects (with who made it), and k3s / API availability events. */
  readonly changes = new ChangeLog()
  readonly controllers: {
    crds: CrdController
    scheduler?: Scheduler
    kubelet?: Kubelet
    disruption?: DisruptionController
    replicaSets?: ReplicaSetController
    deployments?: DeploymentController
    daemonSets?: DaemonSetController
    garbageCollector?: GarbageCollector
    serviceAccounts: ServiceAccountController
  }
  readonly velero?: VeleroSim
  readonly nodes: NodesApi
  readonly pods: PodsApi
  readonly pdbs: PdbsApi
  readonly workloads: WorkloadsApi
  /** A kubeadm cluster's objects and the control-plane upgrades its fake kubeadm asks for. */
  readonly kubeadm: KubeadmCluster
  readonly faults: {add(f: Fault): void; clear(): void}

  private readonly seq = new Sequencer()
  private readonly timers = new Timers()
  private readonly server: ApiServer
  private readonly control: ControlServer
  private readonly lifecycle: NodeLifecycle
  private ready = true
  private transition: Promise<void> = Promise.resolve()
  private cancelComeback?: () => void
  private stopped = false

  static async start(options: SimKubeApiOptions = {}): Promise<SimKubeApi> {
    const tls = await makeServerTls()
    const api = new SimKubeApi(options, tls.caPem, tls.certPem, tls.keyPem)
    try {
      await api.server.listen(0)
      await api.control.listen()
    } catch (e) {
      await api.stop()
      throw e
    }
    return api
  }

  private constructor(
    private readonly options: SimKubeApiOptions,
    caPem: string,
    certPem: string,
    keyPem: string,
  ) {
    this.token = options.token ?? randomBytes(24).toString('base64url')
    this.caPem = caPem
    this.registry = new ResourceRegistry(() => Number(this.versionInfo().minor))
    this.store = new ObjectStore(this.registry, this.seq, this.changes, options.watchHistorySize ?? 1000)
    const ctx: ControllerContext = {store: this.store, registry: this.registry, timers: this.timers}

    const crdController = new CrdController(ctx)
    const veleroNamespace = (options.velero && options.velero.namespace) || 'velero'
    const namespaces = ['default', 'kube-system', 'kube-public', 'kube-node-lease', ...(options.crds?.velero !== false ? [veleroNamespace] : []), ...(options.namespaces ?? [])]
    for (const ns of namespaces) this.ensureNamespace(ns)
    const crds = [...(options.crds?.velero !== false ? veleroCrds() : []), ...(options.crds?.suc !== false ? [sucPlanCrd()] : [])]
    for (const crd of crds) this.store.create(crd, {source: 'test'})

    const c = options.controllers ?? {}
    const kubeletDefaults: KubeletOptions = {podStartupDelayMs: 50, terminationDelayMs: 100}
    this.controllers = {
      crds: crdController,
      serviceAccounts: new ServiceAccountController(ctx),
      scheduler: c.scheduler === false ? undefined : new Scheduler(ctx, {manageTaints: true, ...c.scheduler}),
      kubelet: c.kubelet === false ? undefined : new Kubelet(ctx, {...kubeletDefaults, ...c.kubelet}),
      disruption: c.disruption === false ? undefined : new DisruptionController(ctx, {delayMs: 0, ...c.disruption}),
      replicaSets: c.replicaSets === false ? undefined : new ReplicaSetController(ctx),
      deployments: c.deployments === false ? undefined : new DeploymentController(ctx),
      daemonSets: c.daemonSets === false ? undefined : new DaemonSetController(ctx),
      garbageCollector: c.garbageCollector === false ? undefined : new GarbageCollector(ctx),
    }
    for (const controller of Object.values(this.controllers) as Array<Controller | undefined>) controller?.start()
    crdController.syncNow()
    this.controllers.serviceAccounts.syncNow()

    if (options.crds?.velero !== false && options.velero !== false) {
      this.velero = new VeleroSim(ctx, options.velero || {})
      this.velero.start()
    }

    this.lifecycle = new NodeLifecycle(
      this.store,
      this.timers,
      {readyDelayMs: 300, neverReady: false, stoppedUnknownDelayMs: 0, ...options.nodeDefaults},
      {
        event: (source, event, node, data) => this.recordEvent(source, event, 'nodes', node, data),
        apiDown: (ms) => void this.setUnreachable(ms),
        apiEndpointNode: () => this.apiEndpointNode(),
        apiDownOnServerRestartMs: () => options.apiDownOnServerRestartMs ?? 0,
        defaultVersion: () => options.version ?? defaultVersion,
      },
    )
    this.server = new ApiServer(this.store, this.registry, this.audit, this.seq, this.timers, {
      token: this.token,
      keyPem,
      certPem,
      bookmarkIntervalMs: options.bookmarkIntervalMs ?? 1000,
      versionInfo: () => this.versionInfo(),
      isReady: () => this.ready,
    })
    this.nodes = new NodesApi(this.store, this.lifecycle)
    this.pods = new PodsApi(this, this.store, () => this.controllers.kubelet)
    this.pdbs = new PdbsApi(this, this.store, () => this.controllers.disruption)
    this.workloads = new WorkloadsApi(this, this.store, this.controllers)
    this.kubeadm = new KubeadmCluster(this.store, this.timers, {
      reachable: () => this.reachable,
      url: () => this.url,
      serverVersion: () => String(this.versionInfo().gitVersion),
      apiEndpointNode: () => this.apiEndpointNode(),
      apiDownOnServerRestartMs: () => options.apiDownOnServerRestartMs ?? 0,
      apiDown: (ms) => void this.setUnreachable(ms),
      event: (event, node, data) => this.recordEvent('control', event, 'nodes', node, data),
      addDaemonSet: (o) => this.workloads.addDaemonSet(o),
      addDeployment: (o) => this.workloads.addDeployment(o),
    })
    this.control = new ControlServer(this.lifecycle, this.kubeadm)
    this.faults = {add: (f) => this.server.addFault(f), clear: () => this.server.clearFaults()}
  }

  /** `https://127.0.0.1:<port>` */
  get url(): string {
    return `https://127.0.0.1:${this.server.port}`
  }

  get port(): number {
    return this.server.port
  }

  /** TLS connections clients have opened to the API so far. */
  get tlsHandshakes(): number {
    return this.server.handshakes
  }

  /** Base URL of the control server the fake k3s binaries POST to (HOMELAB_SIM_CONTROL). */
  get controlUrl(): string {
    return this.control.url
  }

  /** False while `setUnreachable` is in effect. */
  get reachable(): boolean {
    return this.server.isListening
  }

  /** k3s service starts and stops reported through the control server, in order. */
  get k3sLog(): readonly K3sEvent[] {
    return this.lifecycle.k3sLog
  }

  /** A point in the shared sequence: `api.audit.since(m)` / `api.changes.since(m)` give what came after. */
  mark(): number {
    return this.seq.next()
  }

  /** Errors thrown inside timers, controllers or store listeners: a healthy run leaves this empty. */
  get internalErrors(): unknown[] {
    return [...this.timers.errors.map((e) => e.error), ...this.store.listenerErrors]
  }

  kubeconfigYaml(opts: KubeconfigOptions = {}): string {
    const name = opts.context ?? 'homelab-sim'
    const context: Dict = {cluster: name, user: `${name}-admin`}
    if (opts.namespace) context.namespace = opts.namespace
    return toYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{name, cluster: {server: this.url, 'certificate-authority-data': Buffer.from(this.caPem).toString('base64')}}],
      contexts: [{name, context}],
      'current-context': name,
      users: [{name: `${name}-admin`, user: {token: this.token}}],
      preferences: {},
    })
  }

  async writeKubeconfig(path: string, opts: KubeconfigOptions = {}): Promise<void> {
    await writeFile(path, this.kubeconfigYaml(opts), {mode: 0o600})
  }

  /**
   * Stop accepting connections and drop the open ones (watches included) for `ms`, then listen
   * again on the same port. `Infinity` keeps it down until the next call. Resolves once down.
   */
  setUnreachable(ms: number): Promise<void> {
    this.cancelComeback?.()
    this.cancelComeback = undefined
    this.transition = this.transition.then(async () => {
      if (this.stopped) return
      if (this.server.isListening) {
        await this.server.unlisten()
        this.recordEvent('control', 'api-down', '', 'apiserver', {ms})
      }
      if (Number.isFinite(ms)) {
        this.cancelComeback = this.timers.after(ms, () => {
          this.cancelComeback = undefined
          void this.comeBack()
        }, 'api-comeback')
      }
    })
    return this.transition
  }

  /** From now on, a restart of the API endpoint's k3s makes the API unreachable this long (0: it stays up). */
  setApiDownOnServerRestart(ms: number): void {
    this.options.apiDownOnServerRestartMs = ms
  }

  /** Listen again now (ends `setUnreachable` early). */
  comeBack(): Promise<void> {
    this.cancelComeback?.()
    this.cancelComeback = undefined
    this.transition = this.transition.then(async () => {
      if (this.stopped || this.server.isListening) return
      await this.server.listen(this.server.port)
      this.recordEvent('control', 'api-up', '', 'apiserver', {})
    })
    return this.transition
  }

  /**
   * End every open watch cleanly (clients see the stream close without error and re-watch from
   * their last resourceVersion), as a real apiserver does when a watch reaches its timeout.
   */
  endWatches(): void {
    this.server.endWatches()
  }

  /** `/readyz` answers 500 while false (the API is up but not ready, as during k3s start). */
  setReadyz(ready: boolean): void {
    this.ready = ready
  }

  ensureNamespace(name: string): StoredObject {
    const existing = this.store.get('namespaces', name)
    if (existing) return existing
    return this.store.create(
      {apiVersion: 'v1', kind: 'Namespace', metadata: {name, labels: {'kubernetes.io/metadata.name': name}}, spec: {finalizers: ['kubernetes']}, status: {phase: 'Active'}},
      {source: 'test'},
    )
  }

  /** Resolves when `predicate` holds (checked on every change and every 20 ms); rejects after the timeout. */
  waitFor<T>(predicate: () => T | undefined | false | null, opts: WaitOptions = {}): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? 5000
    return new Promise<T>((resolve, reject) => {
      const cleanups: Array<() => void> = []
      const done = (fn: () => void): void => {
        for (const c of cleanups) c()
        fn()
      }
      const check = (): void => {
        let value: T | undefined | false | null
        try {
          value = predicate()
        } catch (e) {
          done(() => reject(e))
          return
        }
        if (value) done(() => resolve(value as T))
      }
      cleanups.push(this.store.on(() => queueMicrotask(check)))
      const poll = setInterval(check, 20)
      cleanups.push(() => clearInterval(poll))
      const timer = setTimeout(() => done(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${opts.message ?? 'condition'}`))), timeoutMs)
      cleanups.push(() => clearTimeout(timer))
      check()
    })
  }

  /** Closes both servers, stops every controller and timer. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    this.velero?.stop()
    this.kubeadm.stop()
    for (const controller of Object.values(this.controllers) as Array<Controller | undefined>) controller?.stop()
    this.lifecycle.stop()
    this.timers.cancelAll()
    this.cancelComeback?.()
    await this.transition.catch(() => {})
    await Promise.all([this.server.unlisten(), this.control.close()])
  }

  // The control-plane label: `true` on k3s and rke2, empty on kubeadm.
  private apiEndpointNode(): string | undefined {
    if (this.options.apiEndpointNode) return this.options.apiEndpointNode
    const servers = this.controlPlaneNodes()
    return servers.length === 1 ? servers[0].metadata.name : undefined
  }

  /** The Nodes with the control-plane label, by name, read in place (the version lookup is hot: never change them). */
  private controlPlaneNodes(nodes = this.store.scanIn(this.registry.resolve('nodes'))): readonly StoredObject[] {
    return nodes
      .filter((n) => n.metadata.labels?.['node-role.kubernetes.io/control-plane'] !== undefined)
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
  }

  // Asked on every type lookup (which kinds the minor serves), so thousands of times a second at
  // 200 nodes: kept until the next write, since it is read from stored objects only.
  private versionCache?: {rv: number; info: Dict}

  /** k3s and rke2 serve the API from the server binary (its version); kubeadm from the kube-apiserver static pod. */
  private versionInfo(): Dict {
    const rv = this.store.resourceVersion
    if (this.versionCache?.rv !== rv) this.versionCache = {rv, info: this.readVersionInfo()}
    return this.versionCache.info
  }

  private readVersionInfo(): Dict {
    const endpoint = this.apiEndpointNode()
    const nodes = this.store.scanIn(this.registry.resolve('nodes'))
    const servers = this.controlPlaneNodes(nodes)
    const node = (endpoint ? nodes.find((n) => n.metadata.name === endpoint) : undefined) ?? servers[0]
    const apiserver = node ? this.kubeadm.componentVersions(node.metadata.name)['kube-apiserver'] : undefined
    const gitVersion = String(apiserver ?? node?.status?.nodeInfo?.kubeletVersion ?? this.options.version ?? defaultVersion)
    const m = gitVersion.match(/^v(\d+)\.(\d+)/)
    return {
      major: m?.[1] ?? '1',
      minor: m?.[2] ?? '31',
      gitVersion,
      gitCommit: '0000000000000000000000000000000000000000',
      gitTreeState: 'clean',
      buildDate: '2025-01-01T00:00:00Z',
      goVersion: 'go1.23.4',
      compiler: 'gc',
      platform: `linux/${node?.status?.nodeInfo?.architecture ?? 'amd64'}`,
    }
  }

  private recordEvent(source: string, event: string, resource: string, name: string, data: Dict): number {
    const seq = this.seq.next()
    this.changes.push({seq, at: Date.now(), source, type: 'EVENT', group: '', resource, name, summary: `${event}${Object.keys(data).length ? ` ${JSON.stringify(data)}` : ''}`, diff: {}, event, data})
    return seq
  }
}

// ---------------------------------------------------------------------- helpers for tests

export class NodesApi {
  constructor(
    private readonly store: ObjectStore,
    private readonly lifecycle: NodeLifecycle,
  ) {}

  /** A k3s Node as k3s registers it (roles as labels, addresses, nodeInfo, Ready condition). */
  add(opts: AddNodeOptions): StoredObject {
    return this.lifecycle.add(opts)
  }

  get(name: string): StoredObject | undefined {
    return this.store.get('nodes', name)
  }

  list(): StoredObject[] {
    return this.store.list('nodes')
  }

  remove(name: string): void {
    this.store.delete('nodes', undefined, name)
  }

  /** Set how a node reacts from now on: `readyDelayMs`, `neverReady`, `stoppedUnknownDelayMs`. */
  behave(name: string, behaviour: Partial<NodeBehaviour>): NodeBehaviour {
    return this.lifecycle.behave(name, behaviour)
  }

  /** Flip the node's Ready condition now (as if its kubelet said so). */
  setReady(name: string, ready: boolean | 'Unknown'): StoredObject | undefined {
    return this.lifecycle.setReady(name, ready)
  }

  /** Same as the fake k3s POSTing `k3s-started` to the control server. */
  k3sStarted(name: string, info: K3sStartInfo): void {
    this.lifecycle.started(name, info)
  }

  /** Same as the fake k3s POSTing `k3s-stopped` to the control server. */
  k3sStopped(name: string): void {
    this.lifecycle.stopped(name)
  }

  /** Same as a kubeadm node's fake kubelet POSTing `kubelet-started` (the API stays up). */
  kubeletStarted(name: string, info: K3sStartInfo): void {
    this.lifecycle.started(name, info, 'kubelet-started')
  }

  kubeletStopped(name: string): void {
    this.lifecycle.stopped(name, 'kubelet-stopped')
  }
}

function podStatus(phase: string, ready: boolean, node: StoredObject | undefined, containers: Dict[]): Dict {
  const now = nowIso()
  const ip = ((node?.status?.addresses ?? []) as Dict[]).find((a) => a.type === 'InternalIP')?.address ?? '127.0.0.1'
  const status: Dict = {phase, qosClass: 'BestEffort'}
  if (node) {
    status.conditions = [
      {type: 'PodScheduled', status: 'True', lastTransitionTime: now},
      {type: 'Initialized', status: 'True', lastTransitionTime: now},
      {type: 'ContainersReady', status: ready ? 'True' : 'False', lastTransitionTime: now},
      {type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: now},
    ]
    status.hostIP = ip
    status.hostIPs = [{ip}]
  }
  if (phase === 'Running' || phase === 'Succeeded' || phase === 'Failed') {
    const octet = 2 + Math.floor(Math.random() * 250)
    status.podIP = `10.42.0.${octet}`
    status.podIPs = [{ip: status.podIP}]
    status.startTime = now
    status.containerStatuses = containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: '',
      ready: ready && phase === 'Running',
      started: phase === 'Running',
      restartCount: 0,
      state: phase === 'Running' ? {running: {startedAt: now}} : {terminated: {exitCode: phase === 'Succeeded' ? 0 : 1, reason: phase === 'Succeeded' ? 'Completed' : 'Error'}},
    }))
  }
  return status
}

export class PodsApi {
  constructor(
    private readonly api: SimKubeApi,
    private readonly store: ObjectStore,
    private readonly kubelet: () => Kubelet | undefined,
  ) {}

  add(opts: AddPodOptions): StoredObject {
    const namespace = opts.namespace ?? 'default'
    this.api.ensureNamespace(namespace)
    const containers = opts.containers ?? [{name: 'app', image: 'registry.k8s.io/pause:3.9'}]
    const volumes = [...(opts.volumes ?? [])]
    if (opts.emptyDir) volumes.push({name: 'scratch', emptyDir: {}})
    const phase = opts.phase ?? (opts.node ? 'Running' : 'Pending')
    const ready = opts.ready ?? phase === 'Running'
    const annotations = {...(opts.annotations ?? {})}
    if (opts.mirror) annotations['kubernetes.io/config.mirror'] = randomSuffix(32)
    const node = opts.node ? this.store.get('nodes', opts.node) : undefined
    const pod: KubeObject = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: opts.name,
        namespace,
        labels: opts.labels ?? {},
        ...(Object.keys(annotations).length ? {annotations} : {}),
        ...(opts.owner ? {ownerReferences: [this.ownerRef(namespace, opts.owner)]} : {}),
      },
      spec: {
        containers,
        ...(volumes.length ? {volumes} : {}),
        ...(opts.node ? {nodeName: opts.node} : {}),
        restartPolicy: 'Always',
        terminationGracePeriodSeconds: opts.terminationGracePeriodSeconds ?? 30,
        dnsPolicy: 'ClusterFirst',
        schedulerName: 'default-scheduler',
        serviceAccountName: 'default',
        tolerations: [
          ...(opts.tolerations ?? []),
          {key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300},
          {key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300},
        ],
      },
      status: podStatus(phase, ready, opts.node ? node ?? ({} as StoredObject) : undefined, containers),
    }
    const created = this.store.create(pod, {source: 'test'})
    if (opts.pinned ?? (opts.phase !== undefined || opts.ready !== undefined)) this.kubelet()?.pinned.add(created.metadata.uid)
    return created
  }

  get(namespace: string, name: string): StoredObject | undefined {
    return this.store.get('pods', namespace, name)
  }

  list(opts: {namespace?: string; node?: string; labelSelector?: string} = {}): StoredObject[] {
    return this.store.list('pods', {namespace: opts.namespace, labelSelector: opts.labelSelector, where: (p) => opts.node === undefined || p.spec?.nodeName === opts.node})
  }

  /** Set phase/readiness and pin it (the kubelet stops managing this pod's status). */
  setStatus(namespace: string, name: string, s: {phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed'; ready?: boolean}): StoredObject | undefined {
    return this.store.mutate(
      'pods',
      namespace,
      name,
      (p) => {
        this.kubelet()?.pinned.add(p.metadata.uid)
        p.status ??= {}
        if (s.phase) p.status.phase = s.phase
        if (s.ready !== undefined) {
          setCondition(p, {type: 'Ready', status: s.ready ? 'True' : 'False'})
          setCondition(p, {type: 'ContainersReady', status: s.ready ? 'True' : 'False'})
          for (const cs of (p.status.containerStatuses ?? []) as Dict[]) cs.ready = s.ready
        }
      },
      {source: 'test'},
    )
  }

  /** Hand the pod's status back to the kubelet. */
  unpin(namespace: string, name: string): void {
    const p = this.get(namespace, name)
    if (p) {
      this.kubelet()?.pinned.delete(p.metadata.uid)
      this.kubelet()?.kick()
    }
  }

  private ownerRef(namespace: string, owner: NonNullable<AddPodOptions['owner']>): OwnerReference {
    if (owner.uid) return {apiVersion: owner.apiVersion ?? 'apps/v1', kind: owner.kind, name: owner.name, uid: owner.uid, controller: true, blockOwnerDeletion: true}
    const ref = {ReplicaSet: 'replicasets.apps', DaemonSet: 'daemonsets.apps', StatefulSet: 'statefulsets.apps', Job: 'jobs.batch', Deployment: 'deployments.apps'}[owner.kind]
    const found = ref ? this.store.get(ref, namespace, owner.name) : undefined
    if (found) return ownerReferenceTo(found)
    const apiVersion = owner.apiVersion ?? (owner.kind === 'Job' ? 'batch/v1' : 'apps/v1')
    return {apiVersion, kind: owner.kind, name: owner.name, uid: randomUUID(), controller: true, blockOwnerDeletion: true}
  }
}

export class PdbsApi {
  constructor(
    private readonly api: SimKubeApi,
    private readonly store: ObjectStore,
    private readonly controller: () => DisruptionController | undefined,
  ) {}

  /** Creates the PDB; its status is computed at once when the disruption controller runs without delay. */
  add(opts: AddPdbOptions): StoredObject {
    const namespace = opts.namespace ?? 'default'
    this.api.ensureNamespace(namespace)
    const sel = opts.selector as Dict
    const selector = 'matchLabels' in sel || 'matchExpressions' in sel ? sel : {matchLabels: sel}
    const spec: Dict = {selector}
    if (opts.minAvailable !== undefined) spec.minAvailable = opts.minAvailable
    if (opts.maxUnavailable !== undefined) spec.maxUnavailable = opts.maxUnavailable
    if (opts.unhealthyPodEvictionPolicy) spec.unhealthyPodEvictionPolicy = opts.unhealthyPodEvictionPolicy
    const created = this.store.create({apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: {name: opts.name, namespace}, spec}, {source: 'test'})
    const c = this.controller()
    if (c && c.options.delayMs === 0) c.syncNow()
    return this.store.get('poddisruptionbudgets.policy', namespace, opts.name) ?? created
  }

  get(namespace: string, name: string): StoredObject | undefined {
    return this.store.get('poddisruptionbudgets.policy', namespace, name)
  }
}

function podTemplate(o: WorkloadOptions, labels: Record<string, string>): Dict {
  const volumes = o.emptyDir ? [{name: 'scratch', emptyDir: {}}] : undefined
  return {
    metadata: {labels},
    spec: {
      containers: o.containers ?? [{name: 'app', image: 'registry.k8s.io/pause:3.9'}],
      ...(volumes ? {volumes} : {}),
      ...(o.nodeSelector ? {nodeSelector: o.nodeSelector} : {}),
      ...(o.tolerations ? {tolerations: o.tolerations} : {}),
      terminationGracePeriodSeconds: o.terminationGracePeriodSeconds ?? 30,
    },
  }
}

export class WorkloadsApi {
  constructor(
    private readonly api: SimKubeApi,
    private readonly store: ObjectStore,
    private readonly controllers: SimKubeApi['controllers'],
  ) {}

  addReplicaSet(o: ReplicaSetOptions): StoredObject {
    const namespace = o.namespace ?? 'default'
    this.api.ensureNamespace(namespace)
    const labels = o.labels ?? {app: o.name}
    const replicas = o.replicas ?? o.podsOn?.length ?? 1
    const rs = this.store.create(
      {apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: {name: o.name, namespace, labels}, spec: {replicas, selector: {matchLabels: labels}, template: podTemplate(o, labels)}},
      {source: 'test'},
    )
    for (const node of o.podsOn ?? []) {
      this.api.pods.add({
        name: `${o.name}-${randomSuffix()}`,
        namespace,
        node,
        labels,
        owner: {kind: 'ReplicaSet', name: o.name, uid: rs.metadata.uid},
        emptyDir: o.emptyDir,
        terminationGracePeriodSeconds: o.terminationGracePeriodSeconds,
        containers: o.containers,
        pinned: false,
      })
    }
    this.controllers.replicaSets?.syncNow()
    return this.store.get('replicasets.apps', namespace, o.name) ?? rs
  }

  addDeployment(o: DeploymentOptions): StoredObject {
    const namespace = o.namespace ?? 'default'
    this.api.ensureNamespace(namespace)
    const labels = o.labels ?? {app: o.name}
    const dep = this.store.create(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: {name: o.name, namespace, labels},
        spec: {replicas: o.replicas ?? 1, selector: {matchLabels: labels}, template: podTemplate(o, labels), strategy: {type: 'RollingUpdate', rollingUpdate: {maxUnavailable: '25%', maxSurge: '25%'}}},
      },
      {source: 'test'},
    )
    this.controllers.deployments?.syncNow()
    this.controllers.replicaSets?.syncNow()
    return dep
  }

  addDaemonSet(o: WorkloadOptions): StoredObject {
    const namespace = o.namespace ?? 'kube-system'
    this.api.ensureNamespace(namespace)
    const labels = o.labels ?? {app: o.name}
    const ds = this.store.create(
      {apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: {name: o.name, namespace, labels}, spec: {selector: {matchLabels: labels}, template: podTemplate(o, labels), updateStrategy: {type: 'RollingUpdate', rollingUpdate: {maxUnavailable: 1, maxSurge: 0}}}},
      {source: 'test'},
    )
    this.controllers.daemonSets?.syncNow()
    return this.store.get('daemonsets.apps', namespace, o.name) ?? ds
  }
}

