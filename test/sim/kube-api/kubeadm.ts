/**
 * What `kubeadm init` and `kubeadm join` leave in the API of a kubeadm cluster, and what
 * `kubeadm upgrade apply|node` change there:
 *
 * - ConfigMap `kube-system/kubeadm-config` (key `ClusterConfiguration`, `kubernetesVersion`),
 *   `kube-system/kubelet-config` (key `kubelet`) and `kube-system/kube-proxy`;
 * - the kube-proxy DaemonSet (image `registry.k8s.io/kube-proxy:<version>`) and the CoreDNS
 *   Deployment (`coredns`, label `k8s-app: kube-dns`, tolerating the control-plane taint);
 * - on every control plane the mirror pods of its static pods: `kube-apiserver-<node>`,
 *   `kube-controller-manager-<node>`, `kube-scheduler-<node>` and, with stacked etcd,
 *   `etcd-<node>`, labelled `component` and `tier: control-plane`, annotated
 *   `kubernetes.io/config.mirror` (drains skip them), owned by their Node, Running and Ready.
 *   A mirror pod deleted through the API comes back, as the kubelet re-creates it from the
 *   manifest.
 *
 * The fake kubeadm on a node calls the control server, which calls `upgradeStaticPods` (one
 * node's static pods, as `upgrade apply` and `upgrade node` restart them: fails while that
 * node's kubelet is down, as kubeadm then times out) and `apply` (cluster-wide: kubeadm-config,
 * kubelet-config, kube-proxy, CoreDNS). With `apiDownOnServerRestartMs`, the API endpoint's own
 * kube-apiserver restart makes the API unreachable that long.
 *
 * `skewViolations` records every kubelet that came up newer (by minor) than the newest
 * kube-apiserver of the cluster, or newer than the kube-apiserver on its own control plane: the
 * version-skew policy's "kubelet is never newer than kube-apiserver", as a product can break it.
 */
import {parse, stringify} from 'yaml'

import {
  CONTROL_PLANE_COMPONENTS,
  clusterConfigurationYaml,
  componentImage,
  kubeadmTools,
  staticPod,
  type EtcdTopology,
  type StaticPodComponent,
} from '../kubeadm-fake.js'
import {isNodeReady} from './objects.js'
import type {ObjectStore} from './store.js'
import type {Timers} from './timers.js'
import {type Dict, type StoredObject, nowIso, randomSuffix} from './types.js'

const tools = kubeadmTools()
const NS = 'kube-system'
const SOURCE = 'kubeadm'

export interface KubeadmControlPlane {
  name: string
  ip: string
  /** The node's /etc/kubernetes and /var/lib/etcd (paths in the manifests). */
  kubeDir: string
  etcdDataDir: string
}

export interface KubeadmInitOptions {
  version: string
  controlPlanes: KubeadmControlPlane[]
  etcd: EtcdTopology
  /** controlPlaneEndpoint, `host:port`. */
  endpoint: string
}

export interface KubeadmNodeState {
  name: string
  controlPlane: boolean
  ready: boolean
  kubeletVersion: string
  internalIP: string
  /** Image tags of this node's static pods: `{'kube-apiserver': 'v1.31.4', etcd: '3.5.15-0', …}`. */
  components: Record<string, string>
}

/** What `GET /kubeadm/state` answers: what kubeadm reads from the API before it acts. */
export interface KubeadmState {
  initialized: boolean
  apiReachable: boolean
  apiUrl: string
  /** kubeadm-config's kubernetesVersion. */
  kubernetesVersion: string
  /** What /version says (the API endpoint's kube-apiserver). */
  serverVersion: string
  dnsVersion: string
  etcd: EtcdTopology
  clusterConfiguration: string
  nodes: KubeadmNodeState[]
}

export interface SkewViolation {
  at: number
  node: string
  kubelet: string
  /** The kube-apiserver version it was compared with. */
  apiserver: string
}

export interface KubeadmHooks {
  reachable(): boolean
  url(): string
  serverVersion(): string
  apiEndpointNode(): string | undefined
  apiDownOnServerRestartMs(): number
  apiDown(ms: number): void
  event(event: string, node: string, data: Dict): void
  addDaemonSet(o: {name: string; namespace: string; labels: Record<string, string>; tolerations: Dict[]; containers: Dict[]}): void
  addDeployment(o: {name: string; namespace: string; labels: Record<string, string>; tolerations: Dict[]; containers: Dict[]; replicas: number}): void
}

export class KubeadmCluster {
  readonly skewViolations: SkewViolation[] = []
  private readonly controlPlanes = new Map<string, KubeadmControlPlane & {tags: Partial<Record<StaticPodComponent, string>>}>()
  private etcd: EtcdTopology = 'stacked'
  private unsubscribe?: () => void
  private readonly pending = new Set<() => void>()

  constructor(
    private readonly store: ObjectStore,
    private readonly timers: Timers,
    private readonly hooks: KubeadmHooks,
  ) {}

  get initialized(): boolean {
    return this.store.get('configmaps', NS, 'kubeadm-config') !== undefined
  }

  /** What kubeadm init/join left: the ConfigMaps, kube-proxy, CoreDNS and every control plane's static pods. */
  init(o: KubeadmInitOptions): void {
    if (!tools.parseKube(o.version)) throw new Error(`kubeadm cluster: "${o.version}" is not a Kubernetes version like v1.31.4`)
    this.etcd = o.etcd
    const etcdVersion = tools.etcdVersionFor(o.version)
    const configMap = (name: string, data: Record<string, string>) =>
      this.store.create({apiVersion: 'v1', kind: 'ConfigMap', metadata: {name, namespace: NS}, data}, {source: SOURCE})
    configMap('kubeadm-config', {ClusterConfiguration: clusterConfigurationYaml({version: o.version, etcd: o.etcd, endpoint: o.endpoint})})
    configMap('kubelet-config', {kubelet: tools.kubeletConfigYaml(o.version)})
    configMap('kube-proxy', {'config.conf': 'apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: 10.244.0.0/16\nmode: ""\n'})
    this.hooks.addDaemonSet({
      name: 'kube-proxy',
      namespace: NS,
      labels: {'k8s-app': 'kube-proxy'},
      tolerations: [{operator: 'Exists'}],
      containers: [{name: 'kube-proxy', image: componentImage('kube-proxy', o.version), command: ['/usr/local/bin/kube-proxy', '--config=/var/lib/kube-proxy/config.conf', '--hostname-override=$(NODE_NAME)']}],
    })
    this.hooks.addDeployment({
      name: 'coredns',
      namespace: NS,
      replicas: 2,
      labels: {'k8s-app': 'kube-dns'},
      tolerations: [{key: 'CriticalAddonsOnly', operator: 'Exists'}, {key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule'}],
      containers: [{name: 'coredns', image: `registry.k8s.io/coredns/coredns:${tools.coreDnsVersionFor(o.version)}`, args: ['-conf', '/etc/coredns/Corefile']}],
    })
    for (const cp of o.controlPlanes) {
      const tags: Partial<Record<StaticPodComponent, string>> = {}
      for (const c of CONTROL_PLANE_COMPONENTS) tags[c] = o.version
      if (o.etcd === 'stacked') tags.etcd = etcdVersion
      this.controlPlanes.set(cp.name, {...cp, tags})
      for (const c of Object.keys(tags) as StaticPodComponent[]) this.createMirrorPod(cp.name, c)
    }
    // The kubelet re-creates a mirror pod someone deleted, as long as its manifest is there.
    this.unsubscribe = this.store.on((e) => {
      if (e.type !== 'DELETED' || e.rt.resource !== 'pods' || e.rt.group !== '' || e.source === SOURCE) return
      const pod = e.object
      const component = pod.metadata.labels?.component as StaticPodComponent | undefined
      const node = pod.spec?.nodeName as string | undefined
      if (pod.metadata.namespace !== NS || !component || !node || pod.metadata.annotations?.['kubernetes.io/config.mirror'] === undefined) return
      if (!this.controlPlanes.get(node)?.tags[component]) return
      const cancel = this.timers.after(50, () => {
        this.pending.delete(cancel)
        if (this.store.get('nodes', node) && !this.store.get('pods', NS, `${component}-${node}`)) this.createMirrorPod(node, component)
      }, 'kubelet-mirror-pod')
      this.pending.add(cancel)
    })
  }

  stop(): void {
    this.unsubscribe?.()
    for (const cancel of this.pending) cancel()
    this.pending.clear()
  }

  kubernetesVersion(): string | undefined {
    const text = (this.store.get('configmaps', NS, 'kubeadm-config') as Dict | undefined)?.data?.ClusterConfiguration as string | undefined
    return text ? String(parse(text).kubernetesVersion) : undefined
  }

  /** Image tags of a node's static pods as the API shows them. */
  componentVersions(node: string): Record<string, string> {
    const out: Record<string, string> = {}
    // Read in place, not copied: the API server's version lookup asks this on every type lookup.
    for (const pod of this.store.scanIn(this.store.registry.resolve('pods'), NS)) {
      if (pod.metadata.labels?.tier !== 'control-plane' || pod.spec?.nodeName !== node) continue
      const component = pod.metadata.labels?.component
      const image = String(pod.spec?.containers?.[0]?.image ?? '')
      if (component) out[component] = image.slice(image.lastIndexOf(':') + 1)
    }
    return out
  }

  state(): KubeadmState {
    const nodes = this.store.list('nodes').map((n): KubeadmNodeState => ({
      name: n.metadata.name,
      controlPlane: n.metadata.labels?.['node-role.kubernetes.io/control-plane'] !== undefined,
      ready: isNodeReady(n),
      kubeletVersion: String(n.status?.nodeInfo?.kubeletVersion ?? ''),
      internalIP: String(((n.status?.addresses ?? []) as Dict[]).find((a) => a.type === 'InternalIP')?.address ?? ''),
      components: this.componentVersions(n.metadata.name),
    }))
    const dns = this.store.get('deployments.apps', NS, 'coredns')?.spec?.template?.spec?.containers?.[0]?.image as string | undefined
    return {
      initialized: this.initialized,
      apiReachable: this.hooks.reachable(),
      apiUrl: this.hooks.url(),
      kubernetesVersion: this.kubernetesVersion() ?? '',
      serverVersion: this.hooks.serverVersion(),
      dnsVersion: dns ? dns.slice(dns.lastIndexOf(':') + 1) : '',
      etcd: this.etcd,
      clusterConfiguration: String((this.store.get('configmaps', NS, 'kubeadm-config') as Dict | undefined)?.data?.ClusterConfiguration ?? ''),
      nodes,
    }
  }

  /**
   * The kubelet of `node` restarts the given static pods at their new tags (the three control
   * plane components at `version`, etcd at `etcdVersion`). Throws kubeadm's timeout when that
   * kubelet is down (the pods cannot change) or the node is no control plane.
   */
  upgradeStaticPods(node: string, o: {version: string; etcdVersion?: string; components?: string[]}): void {
    const cp = this.controlPlanes.get(node)
    if (!cp) throw new Error(`node ${node} runs no static control plane pods`)
    const wanted = (o.components ?? [...CONTROL_PLANE_COMPONENTS, ...(o.etcdVersion ? ['etcd'] : [])]) as StaticPodComponent[]
    if (!isNodeReady(this.store.get('nodes', node))) {
      throw new Error(`static Pod hash for component ${wanted[0] ?? 'kube-apiserver'} on Node ${node} did not change after 5m0s: timed out waiting for the condition`)
    }
    for (const c of wanted) {
      const tag = c === 'etcd' ? o.etcdVersion : o.version
      if (!tag || !(c in cp.tags)) continue
      cp.tags[c] = tag
      this.store.delete('pods', NS, `${c}-${node}`, {source: SOURCE})
      this.createMirrorPod(node, c)
    }
    this.hooks.event('kubeadm-static-pods', node, {...o, components: wanted})
    const endpoint = this.hooks.apiEndpointNode()
    if (wanted.includes('kube-apiserver') && endpoint === node && this.hooks.apiDownOnServerRestartMs() > 0) this.hooks.apiDown(this.hooks.apiDownOnServerRestartMs())
  }

  /** The cluster-wide part of `kubeadm upgrade apply`: kubeadm-config, kubelet-config, kube-proxy, CoreDNS. */
  apply(o: {node: string; version: string; dnsVersion?: string}): void {
    if (!this.controlPlanes.has(o.node)) throw new Error(`node ${o.node} is no control plane`)
    const setData = (name: string, key: string, value: (old: string) => string) =>
      this.store.mutate('configmaps', NS, name, (cm: Dict) => {
        cm.data = {...(cm.data ?? {}), [key]: value(String(cm.data?.[key] ?? ''))}
      }, {source: SOURCE})
    setData('kubeadm-config', 'ClusterConfiguration', (old) => stringify({...(parse(old) ?? {}), kubernetesVersion: o.version}))
    setData('kubelet-config', 'kubelet', () => tools.kubeletConfigYaml(o.version))
    const setImage = (ref: string, name: string, image: string) =>
      this.store.mutate(ref, NS, name, (obj) => {
        const containers = obj.spec?.template?.spec?.containers as Dict[] | undefined
        if (containers?.[0]) containers[0].image = image
      }, {source: SOURCE})
    setImage('daemonsets.apps', 'kube-proxy', componentImage('kube-proxy', o.version))
    if (o.dnsVersion) setImage('deployments.apps', 'coredns', `registry.k8s.io/coredns/coredns:${o.dnsVersion}`)
    this.hooks.event('kubeadm-apply', o.node, {...o})
  }

  /** Checks the version-skew policy when a kubelet comes up (see the file comment). */
  kubeletStarted(node: string, version: string): void {
    const apiservers = [...this.controlPlanes.keys()].map((n) => this.controlPlanes.get(n)!.tags['kube-apiserver']!).sort(tools.compareKube)
    const newest = apiservers.at(-1)
    const own = this.controlPlanes.get(node)?.tags['kube-apiserver']
    const minor = (v: string) => tools.parseKube(v)!.minor
    if (newest && minor(version) > minor(newest)) this.skewViolations.push({at: Date.now(), node, kubelet: version, apiserver: newest})
    else if (own && tools.compareKube(version, own) > 0) this.skewViolations.push({at: Date.now(), node, kubelet: version, apiserver: own})
  }

  private createMirrorPod(node: string, component: StaticPodComponent): StoredObject | undefined {
    const cp = this.controlPlanes.get(node)!
    const nodeObj = this.store.get('nodes', node)
    if (!nodeObj) return undefined
    const manifest = staticPod(component, {
      node,
      ip: cp.ip,
      version: component === 'etcd' ? '' : cp.tags[component]!,
      etcdVersion: cp.tags.etcd ?? '',
      kubeDir: cp.kubeDir,
      etcdDataDir: cp.etcdDataDir,
      etcd: this.etcd,
    })
    const hash = randomSuffix(32).replace(/[^0-9a-f]/g, '0')
    const ready = isNodeReady(nodeObj)
    const now = nowIso()
    const containers = manifest.spec.containers as Dict[]
    return this.store.create(
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: `${component}-${node}`,
          namespace: NS,
          labels: manifest.metadata.labels,
          annotations: {
            ...(manifest.metadata.annotations ?? {}),
            'kubernetes.io/config.hash': hash,
            'kubernetes.io/config.mirror': hash,
            'kubernetes.io/config.seen': now,
            'kubernetes.io/config.source': 'file',
          },
          ownerReferences: [{apiVersion: 'v1', kind: 'Node', name: node, uid: nodeObj.metadata.uid, controller: true}],
        },
        spec: {
          ...manifest.spec,
          nodeName: node,
          restartPolicy: 'Always',
          terminationGracePeriodSeconds: 30,
          dnsPolicy: 'ClusterFirst',
          schedulerName: 'default-scheduler',
          enableServiceLinks: true,
          tolerations: [{operator: 'Exists', effect: 'NoExecute'}],
        },
        status: {
          phase: 'Running',
          conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({type, status: ready || type === 'PodScheduled' || type === 'Initialized' ? 'True' : 'False', lastTransitionTime: now})),
          hostIP: cp.ip,
          hostIPs: [{ip: cp.ip}],
          podIP: cp.ip,
          podIPs: [{ip: cp.ip}],
          qosClass: 'Burstable',
          startTime: now,
          containerStatuses: containers.map((c) => ({name: c.name, image: c.image, imageID: '', ready, started: true, restartCount: 0, state: {running: {startedAt: now}}})),
        },
      },
      {source: SOURCE},
    )
  }
}
