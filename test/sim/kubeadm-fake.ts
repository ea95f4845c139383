/**
 * What the simulated kubeadm cluster is made of, shared by the node fixtures (kubeadm-node.ts),
 * the package repository (package-repo.ts) and the simulated API (kube-api/kubeadm.ts):
 * versions and their package spellings, the ClusterConfiguration kubeadm keeps in
 * `kube-system/kubeadm-config`, and the static pod manifests of a control plane.
 *
 * The fake tools themselves (apt, dpkg, dnf, rpm, kubeadm, kubelet, kubectl, etcdctl, swapon)
 * are one CommonJS file, kubeadm-tools.cjs; `kubeadmTools()` loads its pure helpers here so that
 * the repository, the fixtures and the tools agree on every version scheme and table.
 */
import {createRequire} from 'node:module'
import {fileURLToPath} from 'node:url'

import {stringify} from 'yaml'

import type {Distribution} from './k3s-fake.js'

/** k3s and rke2 swap one binary; kubeadm clusters are upgraded through packages. */
export type SimDistribution = Distribution | 'kubeadm'
/** pkgs.k8s.io publishes these (no 32-bit arm). */
export type KubeadmArch = 'amd64' | 'arm64' | 's390x'
export const KUBEADM_ARCHES: readonly KubeadmArch[] = ['amd64', 'arm64', 's390x']
/** Debian-like nodes (apt, dpkg) or EL nodes (dnf, rpm). */
export type NodePackageManager = 'apt' | 'dnf'
/** Stacked etcd runs as a static pod on every control plane; external etcd is somewhere else. */
export type EtcdTopology = 'stacked' | 'external'

export interface ParsedKubeVersion {
  major: number
  minor: number
  patch: number
  /** `rc.1`, or '' for a release. */
  pre: string
  /** `v1.31.4` */
  text: string
}

export interface KubeadmTools {
  parseKube(v: string): ParsedKubeVersion | null
  compareKube(a: string, b: string): number
  compareDeb(a: string, b: string): number
  compareRpm(a: string, b: string): number
  /** `1.31.4-1.1` for kubeadm, kubelet, kubectl; cri-tools and kubernetes-cni follow the minor. */
  debVersion(pkg: string, kube: string): string
  rpmEvr(pkg: string, kube: string): {epoch: string; version: string; release: string}
  /** `1.31.4-1.1` → `v1.31.4` */
  kubeOfPackageVersion(v: string): string
  /** The etcd image tag kubeadm of that version deploys, e.g. `3.5.15-0`. */
  etcdVersionFor(kube: string): string
  coreDnsVersionFor(kube: string): string
  aptListFileName(uri: string): string
  unitFile(node: {binDir: string}): string
  kubeletConfigYaml(version: string): string
  /** Writes what installing the package puts on disk (its binaries; the kubelet's unit). `initial`: as installed at creation, no daemon-reload pending. */
  installPayload(ctx: {root: string; state: string; node: KubeadmNodeJson}, pkg: string, version: string, opts?: {initial?: boolean}): void
  CORE_PACKAGES: readonly string[]
  SUPPORT_PACKAGES: readonly string[]
  ALL_PACKAGES: readonly string[]
  DEB_ARCH: Record<KubeadmArch, string>
  RPM_ARCH: Record<KubeadmArch, string>
}

/** `state/kubeadm-node.json`: what the fake tools know about the node they run on. */
export interface KubeadmNodeJson {
  name: string
  role: 'server' | 'agent'
  controlPlane: boolean
  arch: KubeadmArch
  packageManager: NodePackageManager
  etcd: EtcdTopology | null
  internalIP: string
  kubeDir: string
  binDir: string
  kubeletDir: string
  etcdDataDir: string
  unitFile: string
  etcdctlVersion: string
}

export const KUBEADM_TOOLS_PATH = fileURLToPath(new URL('./kubeadm-tools.cjs', import.meta.url))

let loaded: KubeadmTools | undefined
export function kubeadmTools(): KubeadmTools {
  loaded ??= createRequire(import.meta.url)('./kubeadm-tools.cjs') as KubeadmTools
  return loaded
}

/** A plain Kubernetes version as kubeadm clusters use: `v1.31.4` (no `+k3s1`). */
export function isKubeadmVersion(version: string): boolean {
  return /^v\d+\.\d+\.\d+(-(alpha|beta|rc)\.\d+)?$/.test(version)
}

export interface ClusterConfigurationOptions {
  version: string
  etcd: EtcdTopology
  /** `host:port` of the API as kubeadm init was told (controlPlaneEndpoint). */
  endpoint: string
}

/** The ClusterConfiguration as `kubeadm init` uploads it (v1beta4 from 1.31 on, v1beta3 before). */
export function clusterConfiguration(o: ClusterConfigurationOptions): Record<string, unknown> {
  const minor = kubeadmTools().parseKube(o.version)!.minor
  const v1beta4 = minor >= 31
  const etcd = o.etcd === 'stacked'
    ? {local: {dataDir: '/var/lib/etcd'}}
    : {external: {endpoints: ['https://etcd-1.homelab.internal:2379'], caFile: '/etc/kubernetes/pki/etcd/ca.crt', certFile: '/etc/kubernetes/pki/apiserver-etcd-client.crt', keyFile: '/etc/kubernetes/pki/apiserver-etcd-client.key'}}
  // kubeadm marshals the struct with sorted keys.
  return {
    apiServer: v1beta4 ? {} : {timeoutForControlPlane: '4m0s'},
    apiVersion: v1beta4 ? 'kubeadm.k8s.io/v1beta4' : 'kubeadm.k8s.io/v1beta3',
    ...(v1beta4 ? {caCertificateValidityPeriod: '87600h0m0s', certificateValidityPeriod: '8760h0m0s'} : {}),
    certificatesDir: '/etc/kubernetes/pki',
    clusterName: 'kubernetes',
    controlPlaneEndpoint: o.endpoint,
    controllerManager: {},
    dns: {},
    ...(v1beta4 ? {encryptionAlgorithm: 'RSA-2048'} : {}),
    etcd,
    imageRepository: 'registry.k8s.io',
    kind: 'ClusterConfiguration',
    kubernetesVersion: o.version,
    networking: {dnsDomain: 'cluster.local', podSubnet: '10.244.0.0/16', serviceSubnet: '10.96.0.0/12'},
    ...(v1beta4 ? {proxy: {}} : {}),
    scheduler: {},
  }
}

export function clusterConfigurationYaml(o: ClusterConfigurationOptions): string {
  return stringify(clusterConfiguration(o))
}

export const CONTROL_PLANE_COMPONENTS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const
export type StaticPodComponent = (typeof CONTROL_PLANE_COMPONENTS)[number] | 'etcd'

export interface StaticPodOptions {
  node: string
  ip: string
  /** Kubernetes version (image tag of the three control-plane components). */
  version: string
  /** etcd image tag, e.g. `3.5.15-0`. */
  etcdVersion: string
  /** Where this node keeps /etc/kubernetes and /var/lib/etcd (the node directory's copies). */
  kubeDir: string
  etcdDataDir: string
  etcd: EtcdTopology
}

/** The image a component (static pod or kube-proxy) runs at a tag. */
export function componentImage(component: StaticPodComponent | 'kube-proxy', tag: string): string {
  return `registry.k8s.io/${component}:${tag}`
}

/** The static pod kubeadm writes for a component (manifest and mirror pod share it). */
export function staticPod(component: StaticPodComponent, o: StaticPodOptions): Record<string, any> {
  const pki = `${o.kubeDir}/pki`
  const etcdServers = o.etcd === 'stacked' ? 'https://127.0.0.1:2379' : 'https://etcd-1.homelab.internal:2379'
  const command: Record<StaticPodComponent, string[]> = {
    'kube-apiserver': [
      'kube-apiserver', `--advertise-address=${o.ip}`, '--allow-privileged=true', '--authorization-mode=Node,RBAC', `--client-ca-file=${pki}/ca.crt`,
      '--enable-admission-plugins=NodeRestriction', `--etcd-cafile=${pki}/etcd/ca.crt`, `--etcd-certfile=${pki}/apiserver-etcd-client.crt`,
      `--etcd-keyfile=${pki}/apiserver-etcd-client.key`, `--etcd-servers=${etcdServers}`, '--secure-port=6443',
      '--service-cluster-ip-range=10.96.0.0/12', `--tls-cert-file=${pki}/apiserver.crt`, `--tls-private-key-file=${pki}/apiserver.key`,
    ],
    'kube-controller-manager': [
      'kube-controller-manager', '--allocate-node-cidrs=true', `--authentication-kubeconfig=${o.kubeDir}/controller-manager.conf`,
      `--authorization-kubeconfig=${o.kubeDir}/controller-manager.conf`, '--bind-address=127.0.0.1', `--client-ca-file=${pki}/ca.crt`,
      '--cluster-cidr=10.244.0.0/16', '--cluster-name=kubernetes', `--kubeconfig=${o.kubeDir}/controller-manager.conf`, '--leader-elect=true',
      '--use-service-account-credentials=true',
    ],
    'kube-scheduler': [
      'kube-scheduler', `--authentication-kubeconfig=${o.kubeDir}/scheduler.conf`, `--authorization-kubeconfig=${o.kubeDir}/scheduler.conf`,
      '--bind-address=127.0.0.1', `--kubeconfig=${o.kubeDir}/scheduler.conf`, '--leader-elect=true',
    ],
    etcd: [
      'etcd', `--advertise-client-urls=https://${o.ip}:2379`, `--cert-file=${pki}/etcd/server.crt`, '--client-cert-auth=true',
      `--data-dir=${o.etcdDataDir}`, `--initial-advertise-peer-urls=https://${o.ip}:2380`, `--key-file=${pki}/etcd/server.key`,
      `--listen-client-urls=https://127.0.0.1:2379,https://${o.ip}:2379`, `--name=${o.node}`, `--peer-cert-file=${pki}/etcd/peer.crt`,
      `--peer-key-file=${pki}/etcd/peer.key`, `--trusted-ca-file=${pki}/etcd/ca.crt`,
    ],
  }
  const annotations: Record<StaticPodComponent, Record<string, string>> = {
    'kube-apiserver': {'kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint': `${o.ip}:6443`},
    'kube-controller-manager': {},
    'kube-scheduler': {},
    etcd: {'kubeadm.kubernetes.io/etcd.advertise-client-urls': `https://${o.ip}:2379`},
  }
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...(Object.keys(annotations[component]).length ? {annotations: annotations[component]} : {}),
      labels: {component, tier: 'control-plane'},
      name: component,
      namespace: 'kube-system',
    },
    spec: {
      containers: [{command: command[component], image: componentImage(component, component === 'etcd' ? o.etcdVersion : o.version), imagePullPolicy: 'IfNotPresent', name: component}],
      hostNetwork: true,
      priority: 2000001000,
      priorityClassName: 'system-node-critical',
      securityContext: {seccompProfile: {type: 'RuntimeDefault'}},
    },
    status: {},
  }
}

export function staticPodManifest(component: StaticPodComponent, o: StaticPodOptions): string {
  return stringify(staticPod(component, o))
}

/** The kubeadm package's drop-in for the kubelet unit (`kubelet.service.d/10-kubeadm.conf`). */
export function kubeadmDropIn(kubeDir: string, kubeletDir: string, binDir: string): string {
  return `# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=${kubeDir}/bootstrap-kubelet.conf --kubeconfig=${kubeDir}/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=${kubeletDir}/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-${kubeletDir}/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=${binDir}/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`
}
