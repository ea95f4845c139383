import {ROLE_LABELS} from '../kube/nodes.js'
import type {PackageDistribution} from './types.js'

/** kubeadm as its upgrade guide lays it out (kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/). */
export const KUBEADM: PackageDistribution = {
  install: 'packages',
  name: 'kubeadm',
  versionSuffix: '',
  exampleVersion: 'v1.32.4',
  channels: 'release-files',
  channelUrl: 'https://dl.k8s.io/release',
  binDirs: ['/usr/bin'],
  dataDir: '/var/lib/kubelet',
  releaseUrl: 'https://dl.k8s.io/release',
  configDir: '/etc/kubernetes',
  kubeconfigPath: '/etc/kubernetes/admin.conf',
  labels: ROLE_LABELS,
  upgrader: 'kubeadm',
  nodePackages: ['kubelet', 'kubectl'],
  kubeletService: 'kubelet',
  adminConf: (dir) => `${dir}/admin.conf`,
  manifestsDir: (dir) => `${dir}/manifests`,
  backupDir: (dir) => `${dir}/tmp`,
  controlPlaneComponents: ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'],
  etcd: {
    manifest: (dir) => `${dir}/manifests/etcd.yaml`,
    certs: (dir) => ({cacert: `${dir}/pki/etcd/ca.crt`, cert: `${dir}/pki/etcd/server.crt`, key: `${dir}/pki/etcd/server.key`}),
    endpoint: 'https://127.0.0.1:2379',
  },
  // pkgs.k8s.io and mirrors of it: the minor is a path segment `v1.31` ahead of deb/ or rpm/.
  repositoryMinor: /\/v(\d+)\.(\d+)(?=\/)/g,
  repositoryFiles: {
    apt: ['kubernetes.list', 'kubernetes.sources'],
    dnf: ['/etc/yum.repos.d/kubernetes.repo'],
  },
  clusterConfigMap: {namespace: 'kube-system', name: 'kubeadm-config', key: 'ClusterConfiguration'},
}
