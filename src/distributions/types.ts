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

export interface DistributionDescriptor {
  name: Distribution
  /** `+k3sN` / `+rke2rN`: what stands before the release number in a version. */
  versionSuffix: string
  /** A version to show in hints: `v1.32.0+k3s1`. */
  exampleVersion: string
  /** The executable's file name in the bin dir, and the word its `--version` line starts with. */
  binary: string
  /** Where the installers put the binary, in the order they try (detection order). */
  binDirs: readonly string[]
  dataDir: string
  /** Where the config file and registries.yaml live. */
  configDir: string
  /** Where a server writes the admin kubeconfig, for hints. */
  kubeconfigPath: string
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
  channelUrl: string
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
  /** Node labels: a server has any of `server`; `etcd` and `controlPlane` tell its kind. */
  labels: RoleLabels
}
