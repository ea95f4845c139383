import {ROLE_LABELS} from '../kube/nodes.js'
import {K3S} from './k3s.js'
import type {DistributionDescriptor} from './types.js'

/** rke2 as its installer and release pages lay it out (systemd only, embedded etcd always). */
export const RKE2: DistributionDescriptor = {
  install: 'binary',
  name: 'rke2',
  channels: 'redirect',
  versionSuffix: 'rke2r',
  exampleVersion: 'v1.31.3+rke2r1',
  binary: 'rke2',
  // The installer's order: tarball to /usr/local, /opt/rke2 where /usr/local is read-only, RPM to /usr.
  binDirs: ['/usr/local/bin', '/opt/rke2/bin', '/usr/bin'],
  dataDir: '/var/lib/rancher/rke2',
  configDir: '/etc/rancher/rke2',
  kubeconfigPath: '/etc/rancher/rke2/rke2.yaml',
  services: {server: 'rke2-server', agent: 'rke2-agent'},
  serviceManagers: ['systemd'],
  binaryArtifacts: {amd64: 'rke2.linux-amd64', arm64: 'rke2.linux-arm64', s390x: 'rke2.linux-s390x'},
  artifactNote:
    'the bare binary rke2.linux-<arch>: it is what gets swapped, it is in sha256sum-<arch>.txt like the tarball, and the tarball would also carry unit files the upgrade must not overwrite',
  checksumFile: (arch) => `sha256sum-${arch}.txt`,
  releaseUrl: 'https://github.com/rancher/rke2/releases/download',
  channelUrl: 'https://update.rke2.io/v1-release/channels',
  releaseTagUrl: 'https://github.com/rancher/rke2/releases/tag/',
  // rke2 embeds k3s's etcd tooling: the same etcd-snapshot and --cluster-reset commands and layout.
  etcd: {...K3S.etcd, alwaysEmbedded: true},
  manifestsDir: (dataDir) => `${dataDir}/server/manifests`,
  sucImage: 'rancher/rke2-upgrade',
  images: {
    dir: (dataDir) => `${dataDir}/agent/images`,
    // The all-in-one archive (core + Canal), or core plus one archive per CNI or chart set.
    archives: (arch) =>
      ['', '-core', '-canal', '-cilium', '-calico', '-flannel', '-multus', '-vsphere'].flatMap((part) =>
        ['tar.zst', 'tar.gz'].map((ext) => `rke2-images${part}.linux-${arch}.${ext}`),
      ),
    imageList: (arch) => `rke2-images-all.linux-${arch}.txt`,
    registriesFile: (configDir) => `${configDir}/registries.yaml`,
  },
  labels: ROLE_LABELS,
}
