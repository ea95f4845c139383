import {ROLE_LABELS} from '../kube/nodes.js'
import type {DistributionDescriptor} from './types.js'

const K3S_ARTIFACTS = {amd64: 'k3s', arm64: 'k3s-arm64', arm: 'k3s-armhf', s390x: 'k3s-s390x'} as const

/** k3s as its installer (install.sh) and release pages lay it out. */
export const K3S: DistributionDescriptor = {
  install: 'binary',
  name: 'k3s',
  channels: 'redirect',
  versionSuffix: 'k3s',
  exampleVersion: 'v1.32.0+k3s1',
  binary: 'k3s',
  // install.sh: /usr/local/bin, or /opt/bin where /usr/local is read-only.
  binDirs: ['/usr/local/bin', '/opt/bin'],
  dataDir: '/var/lib/rancher/k3s',
  configDir: '/etc/rancher/k3s',
  kubeconfigPath: '/etc/rancher/k3s/k3s.yaml',
  services: {server: 'k3s', agent: 'k3s-agent'},
  // OpenRC first: a systemctl binary can exist where systemd does not run.
  serviceManagers: ['openrc', 'systemd'],
  binaryArtifacts: K3S_ARTIFACTS,
  checksumFile: (arch) => `sha256sum-${arch}.txt`,
  releaseUrl: 'https://github.com/k3s-io/k3s/releases/download',
  channelUrl: 'https://update.k3s.io/v1-release/channels',
  releaseTagUrl: 'https://github.com/k3s-io/k3s/releases/tag/',
  etcd: {
    alwaysEmbedded: false,
    snapshotArgs: (name, dataDir) => ['etcd-snapshot', 'save', '--data-dir', dataDir, '--name', name],
    snapshotDir: (dataDir) => `${dataDir}/server/db/snapshots`,
    restoreArgs: (file) => ['server', '--cluster-reset', `--cluster-reset-restore-path=${file}`],
    dbDir: (dataDir) => `${dataDir}/server/db/`,
  },
  manifestsDir: (dataDir) => `${dataDir}/server/manifests`,
  sucImage: 'rancher/k3s-upgrade',
  images: {
    dir: (dataDir) => `${dataDir}/agent/images`,
    // The release's airgap archive in each compression it is published in; zstd is the docs' choice.
    archives: (arch) => ['tar.zst', 'tar.gz', 'tar'].map((ext) => `k3s-airgap-images-${arch}.${ext}`),
    imageList: () => 'k3s-images.txt',
    registriesFile: (configDir) => `${configDir}/registries.yaml`,
  },
  labels: ROLE_LABELS,
}
