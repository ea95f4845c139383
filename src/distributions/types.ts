/**
 * What one Kubernetes distribution is, as data: names, paths, release files and commands. The
 * saga, pre-flight, status and recovery read these values and never ask which distribution they
 * are working on; a new distribution is a new descriptor, not new branches in the code.
 */
import type {RoleLabels, ServerKind} from '../kube/nodes.js'
import type {Distribution} from '../versions/release-version.js'

export type {ServerKind}

/** Architectures by their Kubernetes/GOARCH names. */
export type Arch = 'amd64' | 'arm64' | 'arm' | 's390x'

export type ServiceManager = 'systemd' | 'openrc'

/** What every distribution has, whatever way its nodes are upgraded. */
export interface DescriptorBase {
  name: Distribution
  /** `+k3sN` / `+rke2rN`: what stands before the release number in a version; empty for plain `v1.32.4`. */
  versionSuffix: string
  /** A version to show in hints: `v1.32.0+k3s1`. */
  exampleVersion: string
  /**
   * How `--to stable|latest|v1.32` is resolved: `redirect` asks a channel server for a 302 (k3s,
   * rke2); `release-files` reads one-line files such as `stable-1.32.txt` (dl.k8s.io).
   */
  channels: 'redirect' | 'release-files'
  channelUrl: string
  /** Where the installer puts the binaries, in detection order (the first is the default). */
  binDirs: readonly string[]
  /** The node's state directory (`/var/lib/rancher/k3s`, `/var/lib/kubelet`). */
  dataDir: string
  /** Where release artifacts are published. */
  releaseUrl: string
  /** Where the node-level configuration lives (`/etc/rancher/k3s`, `/etc/kubernetes`). */
  configDir: string
  /** Where a server writes the admin kubeconfig, for hints. */
  kubeconfigPath: string
  /** Node labels: a server has any of `server`; `etcd` and `controlPlane` tell its kind. */
  labels: RoleLabels
}

/** k3s and rke2: one binary per node, swapped and restarted. */
export interface DistributionDescriptor extends DescriptorBase {
  install: 'binary'
  /** The executable's file name in the bin dir, and the word its `--version` line starts with. */
  binary: string
  services: {server: string; agent: string}
  /** Service managers the installer supports, in detection order (the first found wins). */
  serviceManagers: readonly ServiceManager[]
  /** The release asset that is the bare binary, per architecture it is published for. */
  binaryArtifacts: Partial<Record<Arch, string>>
  /**
   * Why the bare binary and not an archive: the archive (when there is one) holds the same
   * binary plus unit files we must not overwrite, and needs unpacking on the node.
   */
  artifactNote?: string
  /** `sha256sum-<arch>.txt`. */
  checksumFile: (arch: Arch) => string
  releaseUrl: string
  /** The 302 of a channel points at `<releaseTagUrl><version>`. */
  releaseTagUrl: string
  etcd: {
    /** True when every server runs embedded etcd (no SQLite, no external datastore mode to detect). */
    alwaysEmbedded: boolean
    /** Arguments after the binary for a snapshot named `name`. */
    snapshotArgs: (name: string, dataDir: string) => string[]
    snapshotDir: (dataDir: string) => string
    /** `<binary> server --cluster-reset --cluster-reset-restore-path=<file>`. */
    restoreArgs: (snapshotFile: string) => string[]
    /** What must be removed on the other servers before they rejoin a restored cluster. */
    dbDir: (dataDir: string) => string
  }
  /** Packaged component manifests a server applies on every start; `<name>.yaml.skip` leaves one alone. */
  manifestsDir: (dataDir: string) => string
  /** The system-upgrade-controller image (the controller adds the version tag). */
  sucImage: string
  /** How an air-gapped node gets its system images: archives in the agent's image dir, or a registry mirror. */
  images: ImageLayout
}

/** Where a binary distribution keeps the images it imports on start, and how its releases publish them. */
export interface ImageLayout {
  /** Archives here are imported into containerd when the service starts. */
  dir: (dataDir: string) => string
  /**
   * The release's image archives for an arch, as a node may hold them (same images, other
   * compressions, or split per component); the first is what a node that holds none is given.
   */
  archives: (arch: Arch) => readonly string[]
  /** The release file listing every image of the release, one reference per line. */
  imageList: (arch: Arch) => string
  /** The containerd registry configuration (mirrors, auth, TLS) on each node. */
  registriesFile: (configDir: string) => string
}

/** kubeadm: packages from a per-minor repository, `kubeadm upgrade apply|node`, then the kubelet. */
export interface PackageDistribution extends DescriptorBase {
  install: 'packages'
  /** Installed first on every node: its own version must equal the target. */
  upgrader: string
  /** Installed after the node is drained. */
  nodePackages: readonly string[]
  kubeletService: string
  /** `/etc/kubernetes`-relative layout: the first control plane needs `admin.conf`. */
  adminConf: (configDir: string) => string
  manifestsDir: (configDir: string) => string
  /** Where kubeadm keeps its own backups (`kubeadm-backup-manifests-<date>`, `kubeadm-backup-etcd-<date>`). */
  backupDir: (configDir: string) => string
  /** The static pods whose image tag carries the control plane's version. */
  controlPlaneComponents: readonly string[]
  etcd: {
    /** The etcd static pod's manifest: present where etcd is stacked on the control plane. */
    manifest: (configDir: string) => string
    certs: (configDir: string) => {cacert: string; cert: string; key: string}
    endpoint: string
  }
  /** A minor's repository path segment, as in `…/core:/stable:/v1.32/deb/`. */
  repositoryMinor: RegExp
  /** Where the repository definitions usually are, per package manager. */
  repositoryFiles: {apt: readonly string[]; dnf: readonly string[]}
  /** The ConfigMap only kubeadm clusters have (how the distribution is detected). */
  clusterConfigMap: {namespace: string; name: string; key: string}
}

export type AnyDistribution = DistributionDescriptor | PackageDistribution
