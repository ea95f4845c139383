/**
 * k3s and rke2 nodes as the apiserver sees them: realistic Node objects, and their lifecycle
 * driven by the fake binaries through the control server (`k3s-started` → NotReady, then Ready
 * at the reported version after the node's delay; `k3s-stopped` → status Unknown). A start that
 * reports `images.ready: false` (air-gapped, no archive of its release imported) gets the new
 * kubeletVersion after the delay but stays NotReady: KubeletNotReady, the network plugin not
 * initialized and the sandbox image (pause) failing to pull (missingImagesMessage).
 *
 * Role labels as both distributions set them: a server running everything has
 * `node-role.kubernetes.io/control-plane`, `…/master` and (with etcd) `…/etcd`, all `true`; an
 * etcd-only server only `…/etcd`; a control-plane-only server control-plane and master only.
 * Annotations are `k3s.io/…` or `rke2.io/…` after the distribution.
 *
 * kubeadm nodes (`distribution: 'kubeadm'`) are registered as kubeadm and the kubelet do it: a
 * control plane has `node-role.kubernetes.io/control-plane: ""` (empty value) and
 * `node.kubernetes.io/exclude-from-external-load-balancers: ""`, and the
 * `node-role.kubernetes.io/control-plane:NoSchedule` taint; kubeadm's cri-socket annotation, no
 * providerID, pod CIDRs from 10.244.0.0/16. Their kubelet reports `kubelet-started` /
 * `kubelet-stopped` (the same lifecycle as k3s-started / k3s-stopped, but a kubelet restart does
 * not restart the API server).
 */
import {randomUUID} from 'node:crypto'
import {sandboxImage} from '../airgap-images.js'
import {distributionOf, type ServerKind} from '../k3s-fake.js'
import type {SimDistribution} from '../kubeadm-fake.js'
import {setCondition} from './objects.js'
import type {ObjectStore} from './store.js'
import type {Timers} from './timers.js'
import type {Taint} from './objects.js'
import {type Dict, type KubeObject, type StoredObject, nowIso} from './types.js'

export type NodeRole = 'server' | 'agent'
export type Arch = 'amd64' | 'arm64' | 'arm' | 's390x'

export interface AddNodeOptions {
  name: string
  /** Default `agent`. */
  role?: NodeRole
  /** Default 127.0.0.1 (the simulated nodes live on loopback). */
  internalIP?: string
  /** kubelet/kube-proxy version; default the simulation's version. */
  version?: string
  arch?: Arch
  /** Ready condition True (default) or False. */
  ready?: boolean
  labels?: Record<string, string>
  annotations?: Record<string, string>
  /** Cordoned already. */
  unschedulable?: boolean
  taints?: Taint[]
  /** Servers run embedded etcd by default (`node-role.kubernetes.io/etcd`); false for a SQLite server. */
  etcd?: boolean
  /** Servers only: `all` (default), `etcd` (etcd-only) or `control-plane` (no etcd). */
  serverKind?: ServerKind
  /** Default: the version's (`+rke2rN` is rke2), else k3s. Decides labels, annotations, providerID. */
  distribution?: SimDistribution
  /** status.nodeInfo.osImage (default Debian GNU/Linux 12 (bookworm)). */
  osImage?: string
  /** Per-node behaviour, as `nodes.behave()`. */
  readyDelayMs?: number
  neverReady?: boolean
}

export interface NodeBehaviour {
  /** Time from `k3s-started` to Ready (default from the start options, ~300 ms). */
  readyDelayMs: number
  /**
   * What `readyDelayMs` counts from: the start report (default), or the service manager taking
   * the start or restart job (the report's x-homelab-sim-job-started-ms header; without it, the
   * report). The second makes a restart last
   * `readyDelayMs` from `systemctl restart` to Ready as a real node's does, without the fake
   * stop report and binary (node processes here) adding their own start-up to it: the
   * benchmark's physical limit counts restarts that way.
   */
  readyDelayFrom?: 'report' | 'service-manager'
  /** After `k3s-started` the node stays NotReady for good (a failed upgrade). */
  neverReady: boolean
  /** Time from `k3s-stopped` to the Ready condition going Unknown (upstream: ~40 s grace). */
  stoppedUnknownDelayMs: number
  /**
   * The node turns Ready reporting this kubeletVersion, whatever version started (a service that
   * runs another binary than the one upgraded). Unset: the version that started.
   */
  reportsVersion?: string
}

/** What a starting k3s / rke2 found in its agent images dir (the fake binary's import). */
export interface K3sStartImages {
  /** `pull`: images come from the network; `archive`: air-gapped, only what was imported. */
  mode: 'pull' | 'archive'
  /** Archive file names imported on this start. */
  imported: string[]
  /** False: air-gapped without this release's images, so the Node never turns Ready. */
  ready: boolean
}

export interface K3sStartInfo {
  version: string
  arch?: string
  role?: NodeRole
  images?: K3sStartImages
  /** When the service manager took the job that started it (ms since the epoch), if it said. */
  jobStartedMs?: number
}

export interface K3sEvent {
  /** Shared sequence with the audit and change logs. */
  seq: number
  at: number
  node: string
  event: 'k3s-started' | 'k3s-stopped' | 'kubelet-started' | 'kubelet-stopped'
  version?: string
  arch?: string
  role?: NodeRole
  /** k3s-started: what the binary reported about its images (absent when it said nothing). */
  images?: K3sStartImages
}

/**
 * The Ready condition's message of a kubelet whose containerd cannot get the sandbox (pause)
 * image, as on an air-gapped node without its release's images: the CNI pods cannot start, so
 * the network plugin never initializes.
 */
export function missingImagesMessage(version: string, arch: string | undefined): string {
  let pause = 'docker.io/rancher/mirrored-pause:3.6'
  try {
    pause = sandboxImage(version)
  } catch {
    // not a k3s or rke2 version: the default pause image
  }
  const [repo, tag] = pause.replace(/^docker\.io\//, '').split(':')
  return (
    'container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized; ' +
    `failed to get sandbox image "${pause}": failed to pull image "${pause}": failed to pull and unpack image "${pause}": ` +
    `failed to resolve reference "${pause}": failed to do request: Head "https://registry-1.docker.io/v2/${repo}/manifests/${tag}": ` +
    `dial tcp: lookup registry-1.docker.io: no such host (air-gapped: no images archive for ${version}${arch ? ` linux/${arch}` : ''} was imported)`
  )
}

const goArch: Record<string, Arch> = {amd64: 'amd64', x86_64: 'amd64', arm64: 'arm64', aarch64: 'arm64', arm: 'arm', armhf: 'arm', armv7l: 'arm', s390x: 's390x'}
const KERNEL: Record<Arch, string> = {amd64: '6.1.0-28-amd64', arm64: '6.6.51+rpt-rpi-v8', arm: '6.6.51+rpt-rpi-v8', s390x: '6.1.0-28-s390x'}

/** The role labels of a node (see the file comment). */
function roleLabels(role: NodeRole, kind: ServerKind, etcd: boolean): Record<string, string> {
  if (role !== 'server') return {}
  const labels: Record<string, string> = {}
  if (kind !== 'etcd') {
    labels['node-role.kubernetes.io/control-plane'] = 'true'
    labels['node-role.kubernetes.io/master'] = 'true'
  }
  if (kind !== 'control-plane' && etcd) labels['node-role.kubernetes.io/etcd'] = 'true'
  return labels
}

/** The node-args annotation: what the server was started with. */
function nodeArgs(distribution: SimDistribution, role: NodeRole, kind: ServerKind, etcd: boolean): string[] {
  if (role !== 'server') return ['agent']
  const init = distribution === 'k3s' && etcd && kind !== 'control-plane' ? ['--cluster-init'] : []
  if (kind === 'etcd') return ['server', ...init, '--disable-apiserver', '--disable-controller-manager', '--disable-scheduler']
  if (kind === 'control-plane') return ['server', '--disable-etcd']
  return ['server', ...init]
}

export function buildNode(opts: AddNodeOptions, index: number, defaultVersion: string): KubeObject {
  const role = opts.role ?? 'agent'
  const arch = opts.arch ?? 'amd64'
  const version = opts.version ?? defaultVersion
  const ip = opts.internalIP ?? '127.0.0.1'
  const distribution = opts.distribution ?? distributionOf(version) ?? 'k3s'
  const kind = opts.serverKind ?? 'all'
  const kubeadm = distribution === 'kubeadm'
  if (role !== 'server' && opts.serverKind !== undefined) throw new Error(`node ${opts.name}: serverKind is for servers`)
  if (kubeadm && opts.serverKind !== undefined) throw new Error(`node ${opts.name}: kubeadm control planes have no serverKind`)
  if (kind === 'etcd' && opts.etcd === false) throw new Error(`node ${opts.name}: an etcd-only server runs etcd`)
  const etcd = kind === 'control-plane' ? false : opts.etcd !== false
  const labels: Record<string, string> = {
    'beta.kubernetes.io/arch': arch,
    ...(kubeadm ? {} : {'beta.kubernetes.io/instance-type': distribution}),
    'beta.kubernetes.io/os': 'linux',
    'kubernetes.io/arch': arch,
    'kubernetes.io/hostname': opts.name,
    'kubernetes.io/os': 'linux',
    ...(kubeadm ? {} : {'node.kubernetes.io/instance-type': distribution}),
    ...(kubeadm
      ? role === 'server' ? {'node-role.kubernetes.io/control-plane': '', 'node.kubernetes.io/exclude-from-external-load-balancers': ''} : {}
      : roleLabels(role, kind, etcd)),
  }
  const prefix = `${distribution}.io`
  const distributionAnnotations: Record<string, string> = kubeadm
    ? {'kubeadm.alpha.kubernetes.io/cri-socket': 'unix:///var/run/containerd/containerd.sock'}
    : {
        'alpha.kubernetes.io/provided-node-ip': ip,
        [`${prefix}/hostname`]: opts.name,
        [`${prefix}/internal-ip`]: ip,
        [`${prefix}/node-args`]: JSON.stringify(nodeArgs(distribution, role, kind, etcd)),
        [`${prefix}/node-config-hash`]: randomUUID().replace(/-/g, '').slice(0, 52).toUpperCase(),
      }
  const taints = [...(kubeadm && role === 'server' ? [{key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' as const}] : []), ...(opts.taints ?? [])]
  const podCIDR = `10.${kubeadm ? 244 : 42}.${index}.0/24`
  const now = nowIso()
  const cond = (type: string, status: string, reason: string, message: string): Dict => ({type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: now})
  const ready = opts.ready !== false
  const resources = {cpu: '4', memory: '8124892Ki', pods: '110', 'ephemeral-storage': '61202244Ki', 'hugepages-2Mi': '0'}
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: opts.name,
      labels: {...labels, ...(opts.labels ?? {})},
      annotations: {
        ...distributionAnnotations,
        'node.alpha.kubernetes.io/ttl': '0',
        'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
        ...(opts.annotations ?? {}),
      },
    },
    spec: {
      podCIDR,
      podCIDRs: [podCIDR],
      ...(kubeadm ? {} : {providerID: `${distribution}://${opts.name}`}),
      ...(opts.unschedulable ? {unschedulable: true} : {}),
      ...(taints.length ? {taints} : {}),
    },
    status: {
      capacity: resources,
      allocatable: resources,
      conditions: [
        cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        ready ? cond('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status') : cond('Ready', 'False', 'KubeletNotReady', 'container runtime status check may not have completed yet'),
      ],
      addresses: [
        {type: 'InternalIP', address: ip},
        {type: 'Hostname', address: opts.name},
      ],
      daemonEndpoints: {kubeletEndpoint: {Port: 10250}},
      nodeInfo: {
        machineID: randomUUID().replace(/-/g, ''),
        systemUUID: randomUUID(),
        bootID: randomUUID(),
        kernelVersion: KERNEL[arch],
        osImage: opts.osImage ?? 'Debian GNU/Linux 12 (bookworm)',
        containerRuntimeVersion: kubeadm ? 'containerd://1.7.24' : 'containerd://1.7.23-k3s2',
        kubeletVersion: version,
        kubeProxyVersion: version,
        operatingSystem: 'linux',
        architecture: arch,
      },
      images: [],
    },
  }
}

export interface LifecycleHooks {
  /** Record an EVENT in the change log; returns its seq. */
  event(source: string, event: string, node: string, data: Dict): number
  /** The API endpoint's k3s went away (ms = Infinity until it comes back) or restarted. */
  apiDown(ms: number): void
  apiEndpointNode(): string | undefined
  apiDownOnServerRestartMs(): number
  defaultVersion(): string
}

export class NodeLifecycle {
  readonly k3sLog: K3sEvent[] = []
  private readonly behaviours = new Map<string, NodeBehaviour>()
  private readonly pending = new Map<string, () => void>()
  private added = 0

  constructor(
    private readonly store: ObjectStore,
    private readonly timers: Timers,
    private readonly defaults: NodeBehaviour,
    private readonly hooks: LifecycleHooks,
  ) {}

  add(opts: AddNodeOptions): StoredObject {
    const node = this.store.createIn(this.store.registry.resolve('nodes'), buildNode(opts, this.added++, this.hooks.defaultVersion()), {source: 'test'})
    const b: Partial<NodeBehaviour> = {}
    if (opts.readyDelayMs !== undefined) b.readyDelayMs = opts.readyDelayMs
    if (opts.neverReady !== undefined) b.neverReady = opts.neverReady
    if (Object.keys(b).length > 0) this.behave(opts.name, b)
    return node
  }

  behave(name: string, b: Partial<NodeBehaviour>): NodeBehaviour {
    const next = {...this.behaviour(name), ...b}
    this.behaviours.set(name, next)
    return next
  }

  behaviour(name: string): NodeBehaviour {
    return this.behaviours.get(name) ?? {...this.defaults}
  }

  /**
   * What the control server does on `POST /nodes/<node>/k3s-started` (and `kubelet-started`:
   * the same, except that a kubelet is not the API server, so its restart leaves the API up).
   */
  started(name: string, info: K3sStartInfo, event: 'k3s-started' | 'kubelet-started' = 'k3s-started'): void {
    const nodesRt = this.store.registry.resolve('nodes')
    const seq = this.hooks.event('control', event, name, {...info})
    this.k3sLog.push({seq, at: Date.now(), node: name, event, version: info.version, arch: info.arch, role: info.role, ...(info.images ? {images: info.images} : {})})
    this.cancel(name)
    const arch = goArch[info.arch ?? ''] ?? undefined
    if (!this.store.getIn(nodesRt, undefined, name)) {
      // A k3s (or kubelet) that was never registered registers itself, NotReady at first.
      this.add({name, role: info.role, version: info.version, arch, ready: false, ...(event === 'kubelet-started' ? {distribution: 'kubeadm' as const} : {})})
    } else {
      this.setReadyCondition(name, 'False', 'KubeletNotReady', 'container runtime status check may not have completed yet')
    }
    const endpoint = this.hooks.apiEndpointNode()
    if (event === 'k3s-started' && endpoint === name && this.hooks.apiDownOnServerRestartMs() > 0) this.hooks.apiDown(this.hooks.apiDownOnServerRestartMs())
    const b = this.behaviour(name)
    if (b.neverReady) return
    const elapsed = b.readyDelayFrom === 'service-manager' && info.jobStartedMs !== undefined ? Math.max(0, Date.now() - info.jobStartedMs) : 0
    this.pending.set(
      name,
      this.timers.after(Math.max(0, b.readyDelayMs - elapsed), () => {
        this.pending.delete(name)
        if (this.behaviour(name).neverReady) return
        const version = this.behaviour(name).reportsVersion ?? info.version
        this.store.mutateIn(
          nodesRt,
          undefined,
          name,
          (n) => {
            n.status ??= {}
            n.status.nodeInfo = {...(n.status.nodeInfo ?? {}), kubeletVersion: version, kubeProxyVersion: version, ...(arch ? {architecture: arch} : {})}
            if (arch) n.metadata.labels = {...(n.metadata.labels ?? {}), 'kubernetes.io/arch': arch, 'beta.kubernetes.io/arch': arch}
            // The kubelet runs at the new version either way; without its images it never gets Ready.
            const condition = info.images?.ready === false
              ? {type: 'Ready', status: 'False', reason: 'KubeletNotReady', message: missingImagesMessage(info.version, info.arch)}
              : {type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status'}
            setCondition(n, condition, ['lastHeartbeatTime'])
          },
          {source: 'controller:kubelet'},
        )
      }, 'node-ready'),
    )
  }

  /** What the control server does on `POST /nodes/<node>/k3s-stopped` (or `kubelet-stopped`, which leaves the API up). */
  stopped(name: string, event: 'k3s-stopped' | 'kubelet-stopped' = 'k3s-stopped'): void {
    const seq = this.hooks.event('control', event, name, {})
    this.k3sLog.push({seq, at: Date.now(), node: name, event})
    this.cancel(name)
    if (event === 'k3s-stopped' && this.hooks.apiEndpointNode() === name && this.hooks.apiDownOnServerRestartMs() > 0) this.hooks.apiDown(Infinity)
    this.pending.set(
      name,
      this.timers.after(this.behaviour(name).stoppedUnknownDelayMs, () => {
        this.pending.delete(name)
        this.setReadyCondition(name, 'Unknown', 'NodeStatusUnknown', 'Kubelet stopped posting node status.', 'controller:node-lifecycle')
      }, 'node-unknown'),
    )
  }

  /** Flip the Ready condition directly (tests). */
  setReady(name: string, ready: boolean | 'Unknown'): StoredObject | undefined {
    this.cancel(name)
    if (ready === 'Unknown') return this.setReadyCondition(name, 'Unknown', 'NodeStatusUnknown', 'Kubelet stopped posting node status.', 'test')
    return ready
      ? this.setReadyCondition(name, 'True', 'KubeletReady', 'kubelet is posting ready status', 'test')
      : this.setReadyCondition(name, 'False', 'KubeletNotReady', 'container runtime status check may not have completed yet', 'test')
  }

  stop(): void {
    for (const c of this.pending.values()) c()
    this.pending.clear()
  }

  private cancel(name: string): void {
    this.pending.get(name)?.()
    this.pending.delete(name)
  }

  private setReadyCondition(name: string, status: string, reason: string, message: string, source = 'controller:kubelet'): StoredObject | undefined {
    return this.store.mutateIn(
      this.store.registry.resolve('nodes'),
      undefined,
      name,
      (n) => {
        setCondition(n, {type: 'Ready', status, reason, message}, ['lastHeartbeatTime'])
      },
      {source},
    )
  }
}
