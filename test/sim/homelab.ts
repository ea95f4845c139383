/**
 * The simulated homelab: real SSH servers on loopback as nodes, the simulated Kubernetes API,
 * fake k3s or rke2 binaries from a loopback release server, a channel server and Velero. The
 * product talks to it through exactly the code it uses against a real cluster; this file only
 * builds the other side of the wire and writes the cluster file a user would write.
 *
 * `startHomelab({distribution: 'rke2', version: 'v1.31.3+rke2r1', releases: ['v1.31.4+rke2r1']})`
 * builds an rke2 homelab (the distribution also follows from the version alone): `rke2` binaries,
 * rke2-server / rke2-agent units, embedded etcd on every server, rke2's labels and annotations,
 * rke2 release assets and channel 302s, and `distribution: rke2` in homelab.yaml unless
 * `writeDistribution: false` (then only the nodes' kubeletVersion tells).
 *
 * `startHomelab({distribution: 'kubeadm', version: 'v1.31.4', releases: ['v1.31.5', 'v1.32.0', 'v1.32.4'],
 * servers: 3, agents: 3})` builds a kubeadm cluster (a plain version like `v1.31.4` also means
 * kubeadm): servers are control planes, agents workers (kubeadm-node.ts has the node layout and
 * the fake tools). `releases` are what the package repository (`lab.packages`, pkgs.k8s.io and
 * dl.k8s.io's release files on loopback, package-repo.ts) offers, the start version always
 * included; `embeddedEtcd: false` means external etcd (no etcd static pods, `etcd.external` in
 * the ClusterConfiguration). Per node: `packageManager` (`apt`, default, or `dnf`), `held`
 * (default true: apt-mark hold on kubeadm kubelet kubectl, or dnf's `exclude=` line in
 * kubernetes.repo), `aptSourceFormat` (`one-line` kubernetes.list, default, or `deb822`
 * kubernetes.sources) and `swap`. The API gets kubeadm's Nodes (control-plane label with an
 * empty value, the NoSchedule taint), kubeadm-config, kubelet-config, kube-proxy, CoreDNS and
 * the static pods' mirror pods (`api.kubeadm`). homelab.yaml says `distribution: kubeadm`
 * (unless `writeDistribution: false`), per node `install: {binDir: <node>/usr/bin, dataDir:
 * <node>/var/lib/kubelet, configDir: <node>/etc/kubernetes}`, and `install: {releaseUrl,
 * channelUrl}` = the release files' base. The release and channel servers are empty then, as
 * the package repository is for k3s and rke2 homelabs.
 */
import {execFile} from 'node:child_process'
import {mkdir, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir, userInfo} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {promisify} from 'node:util'

import ssh2 from 'ssh2'
import {stringify} from 'yaml'

import {startChannelServer, type ChannelServer} from './channel-server.js'
import {startSshNode as startInprocSshNode} from './inproc-ssh-server.js'
import {SimKubeApi, type SimKubeApiOptions} from './kube-api/index.js'
import {createNodeFixture, type ImagesMode, type NodeFixture, type PackageManager, type ServiceManager} from './node-fixture.js'
import {requireSshdInCi} from './require-sshd.js'
import {startReleaseServer, type ReleaseServer} from './release-server.js'
import {findSshd, startSshNode as startOpenSshNode, type SshNode} from './sshd.js'
import {distributionOf, type K3sArch, type ServerKind} from './k3s-fake.js'
import {isKubeadmVersion, type NodePackageManager, type SimDistribution} from './kubeadm-fake.js'
import {createKubeadmNodeFixture, kubeadmFixture, type AptSourceFormat} from './kubeadm-node.js'
import {startPackageRepo, type PackageRepo} from './package-repo.js'

const run = promisify(execFile)
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

export interface SimNodeSpec {
  name: string
  role: 'server' | 'agent'
  version?: string
  arch?: K3sArch
  serviceManager?: ServiceManager
  /** Cordoned by someone before the run. */
  cordoned?: boolean
  /** Servers: `all` (default), `etcd` (etcd-only: only the etcd role label) or `control-plane` (no etcd). */
  serverKind?: ServerKind
  /** Servers: packaged manifests given a `<name>.skip` in server/manifests, e.g. `rke2-ingress-nginx.yaml`. */
  skipManifests?: string[]
  /** The binary was installed by a package: a fake `rpm -qf` / `dpkg -S` on the node names it. */
  packageOwned?: PackageManager
  /** kubeadm: apt (Debian-like, default) or dnf (EL). */
  packageManager?: NodePackageManager
  /** kubeadm: kubeadm kubelet kubectl held (apt-mark hold) or excluded (dnf); default true. */
  held?: boolean
  /** kubeadm apt nodes: kubernetes.list (`one-line`, default) or kubernetes.sources (`deb822`). */
  aptSourceFormat?: AptSourceFormat
  /** kubeadm: `swapon --show` reports swap. */
  swap?: boolean
  /** kubeadm stacked control planes: etcdctl on the host (default true); false: only inside the etcd container. */
  hostEtcdctl?: boolean
  /** k3s / rke2: how this node gets its system images; default the homelab's `images`. */
  images?: ImagesMode
}

const DEFAULT_VERSION: Record<SimDistribution, string> = {k3s: 'v1.31.4+k3s1', rke2: 'v1.31.3+rke2r1', kubeadm: 'v1.31.4'}
const OS_IMAGE: Record<NodePackageManager, string> = {apt: 'Debian GNU/Linux 12 (bookworm)', dnf: 'Rocky Linux 9.5 (Blue Onyx)'}

export interface HomelabOptions {
  servers?: number
  agents?: number
  /** Overrides servers/agents: the nodes exactly. */
  nodes?: SimNodeSpec[]
  /** k3s, rke2 or kubeadm; default the version's (a plain `v1.31.4` is kubeadm), else k3s. */
  distribution?: SimDistribution
  /** Version every node runs at start (default v1.31.4+k3s1, v1.31.3+rke2r1 for rke2, v1.31.4 for kubeadm). */
  version?: string
  /** Versions the release server (kubeadm: the package repository and release files) offers; the start version is always added. */
  releases?: string[]
  /** Channel id → version, for the channel server. */
  channels?: Record<string, string>
  /** Servers run embedded etcd (default true; rke2 always does). kubeadm: stacked etcd (true) or external (false). */
  embeddedEtcd?: boolean
  /** Write `distribution:` into homelab.yaml (default: true for rke2 and kubeadm, false for k3s). */
  writeDistribution?: boolean
  /** openssh (real sshd), inproc (ssh2 server), auto: openssh where installed. */
  ssh?: 'openssh' | 'inproc' | 'auto'
  become?: 'sudo' | 'none'
  /** Record the nodes' host keys in known_hosts (default true). */
  trustHostKeys?: boolean
  /** Demo workloads: a ReplicaSet under a PDB, a DaemonSet, emptyDir pods. */
  workloads?: boolean
  /** Time from a k3s (kubelet) restart to the node being Ready. */
  readyDelayMs?: number
  api?: SimKubeApiOptions
  /** Merged over the generated homelab.yaml. */
  config?: Record<string, unknown>
  /**
   * k3s / rke2: `pull` (default: images from the network, as before) or `archive` (air-gapped:
   * every node starts with its release's images archive in `<dataDir>/agent/images/` and stays
   * NotReady after a start without the archive of the release it runs). homelab.yaml is the same.
   */
  images?: ImagesMode
  /** Size of every images archive, served and pre-seeded alike (default 2 MiB). */
  archiveBytes?: number
}

export interface SimNode {
  spec: SimNodeSpec & Required<Pick<SimNodeSpec, 'version' | 'arch' | 'serviceManager'>> & {cordoned: boolean}
  fixture: NodeFixture
  ssh: SshNode
  address: string
}

export interface CliResult {
  exitCode: number
  stdout: string
  stderr: string
}

export interface Homelab {
  distribution: SimDistribution
  root: string
  configPath: string
  kubeconfigPath: string
  knownHostsPath: string
  identityPath: string
  /** Environment for the CLI: its own HOME and XDG dirs inside the homelab's root. */
  env: Record<string, string>
  api: SimKubeApi
  release: ReleaseServer
  channels: ChannelServer
  /** pkgs.k8s.io and dl.k8s.io's release files (kubeadm; empty for k3s and rke2). */
  packages: PackageRepo
  nodes: SimNode[]
  node(name: string): SimNode
  /** Runs the built CLI (bin/run.js) as a user would. */
  cli(args: string[], options?: {env?: Record<string, string>; timeoutMs?: number}): Promise<CliResult>
  /** Writes the cluster file again with these changes merged in. */
  writeConfig(extra: Record<string, unknown>): Promise<void>
  stop(): Promise<void>
}

function deepMerge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {...base}
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key]
    out[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object' && !Array.isArray(current)
        ? deepMerge(current as Record<string, unknown>, value as Record<string, unknown>)
        : value
  }
  return out
}

let instance = 0

/**
 * ssh2's generator now and then drops a leading zero byte of the ed25519 public key, writing a
 * key no SSH implementation accepts; generate again (bounded) until it parses.
 */
function clientKeyPair(): {private: string; public: string} {
  for (let attempt = 0; attempt < 20; attempt++) {
    const keys = ssh2.utils.generateKeyPairSync('ed25519', {comment: 'homelab-sim'})
    if (!(ssh2.utils.parseKey(keys.public) instanceof Error)) return keys
  }
  throw new Error('could not generate a valid ed25519 key pair')
}

export async function startHomelab(options: HomelabOptions = {}): Promise<Homelab> {
  const versionOf = (v: string): SimDistribution | undefined => distributionOf(v) ?? (isKubeadmVersion(v) ? 'kubeadm' : undefined)
  const distribution = options.distribution ?? versionOf(options.version ?? '') ?? 'k3s'
  const version = options.version ?? DEFAULT_VERSION[distribution]
  if (versionOf(version) !== distribution) throw new Error(`homelab: ${version} is not a ${distribution} version`)
  const kubeadm = distribution === 'kubeadm'
  const specs: SimNodeSpec[] =
    options.nodes ??
    [
      ...Array.from({length: options.servers ?? 3}, (_, i) => ({name: `server-${i + 1}`, role: 'server' as const})),
      ...Array.from({length: options.agents ?? 3}, (_, i) => ({name: `agent-${i + 1}`, role: 'agent' as const})),
    ]
  const sshMode = options.ssh ?? 'auto'
  // Tests run against OpenSSH; only outside CI may "auto" fall back to the in-process server.
  if (sshMode === 'auto') requireSshdInCi()
  const useOpenSsh = sshMode === 'openssh' || (sshMode === 'auto' && findSshd() !== undefined)
  const become = options.become ?? 'sudo'

  const root = await mkdtemp(path.join(tmpdir(), 'homelab-sim-'))
  const cleanups: Array<() => Promise<unknown>> = [() => rm(root, {recursive: true, force: true})]
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined)
  }
  try {
    const home = path.join(root, 'home')
    await mkdir(path.join(home, '.ssh'), {recursive: true, mode: 0o700})

    const api = await SimKubeApi.start({
      version,
      ...options.api,
      // After the spread: api.nodeDefaults adds to readyDelayMs instead of replacing it.
      nodeDefaults: {readyDelayMs: options.readyDelayMs ?? 150, ...options.api?.nodeDefaults},
    })
    cleanups.push(() => api.stop())
    const kubeconfigPath = path.join(root, 'kubeconfig.yaml')
    await api.writeKubeconfig(kubeconfigPath, {context: 'homelab-sim'})

    const releases = [...new Set([version, ...(options.releases ?? [])])]
    const release = await startReleaseServer({versions: kubeadm ? [] : releases, archiveBytes: options.archiveBytes})
    cleanups.push(() => release.stop())
    // Each channel's 302 points at its version's own release page (k3s-io/k3s or rancher/rke2).
    const channels = await startChannelServer({channels: kubeadm ? {} : options.channels ?? {stable: version, latest: releases.at(-1) as string}})
    cleanups.push(() => channels.stop())
    const packages = await startPackageRepo({releases: kubeadm ? releases : []})
    cleanups.push(() => packages.stop())

    // One client key, as a user has.
    const keys = clientKeyPair()
    const identityPath = path.join(home, '.ssh', 'id_ed25519')
    await writeFile(identityPath, keys.private, {mode: 0o600})
    await writeFile(`${identityPath}.pub`, `${keys.public}\n`)

    // Each node on its own loopback address, so the API's InternalIP is how the CLI finds it.
    instance += 1
    const subnet = ((process.pid + instance * 7) % 200) + 20
    const nodes: SimNode[] = []
    await Promise.all(
      specs.map(async (spec, index) => {
        const full = {version, arch: 'amd64' as K3sArch, serviceManager: 'systemd' as ServiceManager, cordoned: false, ...spec}
        const address = `127.${subnet}.${instance % 250}.${index + 10}`
        const etcd = spec.role === 'server' && spec.serverKind !== 'control-plane' ? options.embeddedEtcd ?? true : undefined
        const fixture = kubeadm
          ? await createKubeadmNodeFixture({
              root: path.join(root, 'nodes'),
              name: spec.name,
              role: spec.role,
              version: full.version,
              arch: kubeadmArch(spec),
              internalIP: address,
              controlUrl: api.controlUrl,
              repoOrigin: packages.origin,
              releaseUrl: packages.releaseUrl,
              kubeconfig: api.kubeconfigYaml(),
              packageManager: spec.packageManager,
              held: spec.held,
              aptSourceFormat: spec.aptSourceFormat,
              hostEtcdctl: spec.hostEtcdctl,
              etcd: spec.role === 'server' ? (etcd ? 'stacked' : 'external') : undefined,
              swap: spec.swap,
              loginAsRoot: become === 'none',
            })
          : await createNodeFixture({
          root: path.join(root, 'nodes'),
          name: spec.name,
          role: spec.role,
          version: full.version,
          arch: full.arch,
          distribution,
          embeddedEtcd: etcd,
          serverKind: spec.serverKind,
          skipManifests: spec.skipManifests,
          packageOwned: spec.packageOwned,
          controlUrl: api.controlUrl,
          serviceManager: full.serviceManager,
          loginAsRoot: become === 'none',
          images: spec.images ?? options.images,
          archiveBytes: options.archiveBytes,
        })
        if (kubeadm && (spec.images ?? options.images) === 'archive') throw new Error(`homelab: node ${spec.name}: images: 'archive' is for k3s and rke2 nodes`)
        if (!kubeadm && (spec.packageManager || spec.held !== undefined || spec.aptSourceFormat || spec.swap !== undefined || spec.hostEtcdctl !== undefined)) {
          throw new Error(`homelab: node ${spec.name}: packageManager, held, aptSourceFormat, swap and hostEtcdctl are for kubeadm nodes`)
        }
        const start = useOpenSsh ? startOpenSshNode : startInprocSshNode
        const ssh = await start({name: spec.name, dir: fixture.dir, address, authorizedKey: keys.public})
        cleanups.push(() => ssh.stop())
        api.nodes.add({
          name: spec.name,
          role: spec.role,
          internalIP: address,
          version: full.version,
          arch: full.arch,
          unschedulable: full.cordoned,
          etcd,
          distribution,
          serverKind: spec.serverKind,
          ...(kubeadm ? {osImage: OS_IMAGE[spec.packageManager ?? 'apt']} : {}),
        })
        nodes[index] = {spec: full, fixture, ssh, address}
      }),
    )

    if (kubeadm) {
      api.kubeadm.init({
        version,
        etcd: options.embeddedEtcd === false ? 'external' : 'stacked',
        endpoint: `${nodes.find((n) => n.spec.role === 'server')?.address ?? '127.0.0.1'}:6443`,
        controlPlanes: nodes.filter((n) => n.spec.role === 'server').map((n) => ({
          name: n.spec.name,
          ip: n.address,
          kubeDir: kubeadmFixture(n.fixture).kubeDir,
          etcdDataDir: kubeadmFixture(n.fixture).etcdDataDir,
        })),
      })
    }

    const knownHostsPath = path.join(home, '.ssh', 'known_hosts')
    await writeFile(knownHostsPath, options.trustHostKeys === false ? '' : nodes.map((n) => n.ssh.knownHostsLine).join('\n') + '\n', {mode: 0o600})

    if (options.workloads) addDemoWorkloads(api, nodes, distribution)

    const configPath = path.join(root, 'homelab.yaml')
    const writeDistribution = options.writeDistribution ?? distribution !== 'k3s'
    const baseConfig: Record<string, unknown> = {
      ...(writeDistribution ? {distribution} : {}),
      kubernetes: {kubeconfig: kubeconfigPath, context: 'homelab-sim'},
      ssh: {user: userInfo().username, identityFile: identityPath, knownHosts: knownHostsPath, become, connectTimeout: '5s'},
      nodes: nodes.map((n) => ({
        name: n.spec.name,
        host: n.address,
        role: n.spec.role,
        ssh: {port: n.ssh.port},
        install: {binDir: n.fixture.binDir, dataDir: n.fixture.dataDir, configDir: kubeadm ? kubeadmFixture(n.fixture).kubeDir : path.join(n.fixture.dir, 'etc')},
      })),
      install: kubeadm ? {releaseUrl: packages.releaseUrl, channelUrl: packages.releaseUrl} : {releaseUrl: release.url, channelUrl: channels.url},
      upgrade: {
        agentConcurrency: 2,
        drain: {timeout: '20s'},
        backup: {velero: {timeout: '30s'}},
        timeouts: {apiReady: '30s', nodeReady: '30s'},
      },
    }
    const writeConfig = async (extra: Record<string, unknown>) => {
      await writeFile(configPath, stringify(deepMerge(deepMerge(baseConfig, options.config ?? {}), extra)))
    }
    await writeConfig({})

    const env: Record<string, string> = {
      HOME: home,
      XDG_STATE_HOME: path.join(root, 'state'),
      XDG_CACHE_HOME: path.join(root, 'cache'),
      XDG_CONFIG_HOME: path.join(root, 'config'),
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOMELAB_CONFIG: configPath,
    }

    return {
      distribution,
      root,
      configPath,
      kubeconfigPath,
      knownHostsPath,
      identityPath,
      env,
      api,
      release,
      channels,
      packages,
      nodes,
      node(name) {
        const found = nodes.find((n) => n.spec.name === name)
        if (!found) throw new Error(`no simulated node ${name}`)
        return found
      },
      async cli(args, cliOptions = {}) {
        try {
          const {stdout, stderr} = await run(process.execPath, [path.join(REPO_ROOT, 'bin', 'run.js'), ...args], {
            env: {...env, ...cliOptions.env},
            timeout: cliOptions.timeoutMs ?? 120_000,
            maxBuffer: 16 * 1024 * 1024,
          })
          return {exitCode: 0, stdout, stderr}
        } catch (error) {
          const e = error as {code?: number | string; stdout?: string; stderr?: string; signal?: string}
          return {exitCode: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: `${e.stderr ?? ''}${e.signal ? `\n(killed by ${e.signal})` : ''}`}
        }
      },
      writeConfig,
      stop,
    }
  } catch (error) {
    await stop()
    throw error
  }
}

function kubeadmArch(spec: SimNodeSpec): 'amd64' | 'arm64' | 's390x' {
  const arch = spec.arch ?? 'amd64'
  if (arch === 'arm') throw new Error(`homelab: node ${spec.name}: pkgs.k8s.io publishes no 32-bit arm packages`)
  return arch
}

/**
 * What a small homelab runs: a web app under a PDB, a cache with emptyDir, a DaemonSet on every
 * node (k3s's ServiceLB for traefik, rke2's ingress-nginx controller, flannel on kubeadm, which
 * tolerates the control planes' taint).
 */

function addDemoWorkloads(api: SimKubeApi, nodes: SimNode[], distribution: SimDistribution): void {
  const agents = nodes.filter((n) => n.spec.role === 'agent').map((n) => n.spec.name)
  const daemon = {k3s: {name: 'svclb-traefik', namespace: 'kube-system'}, rke2: {name: 'rke2-ingress-nginx-controller', namespace: 'kube-system'}, kubeadm: {name: 'kube-flannel-ds', namespace: 'kube-flannel'}}[distribution]
  api.workloads.addDaemonSet({...daemon, ...(distribution === 'kubeadm' ? {tolerations: [{operator: 'Exists', effect: 'NoSchedule'}]} : {})})
  if (agents.length === 0) return
  api.workloads.addReplicaSet({name: 'web', namespace: 'default', podsOn: [...agents, ...agents].slice(0, Math.max(2, agents.length))})
  api.pdbs.add({name: 'web', namespace: 'default', selector: {app: 'web'}, minAvailable: 1})
  api.workloads.addReplicaSet({name: 'cache', namespace: 'default', emptyDir: true, podsOn: agents.slice(0, 2)})
}
