/**
 * A simulated kubeadm node: the directory an SSH session on it lands in, laid out like the host
 * (every path below is under the node directory, which the product is told through homelab.yaml).
 *
 *   <node>/etc/kubernetes/          the kubernetes dir (install.configDir). Control planes:
 *                                   admin.conf, super-admin.conf, controller-manager.conf,
 *                                   scheduler.conf, kubelet.conf, manifests/{kube-apiserver,
 *                                   kube-controller-manager,kube-scheduler,etcd}.yaml (etcd only
 *                                   when stacked), pki/ (pki/etcd/{ca,server,peer,healthcheck-client}
 *                                   .{crt,key} when stacked; pki/apiserver-etcd-client.* when
 *                                   external). Workers: kubelet.conf, pki/ca.crt. kubeadm writes
 *                                   tmp/kubeadm-backup-{manifests,etcd}-<date>/ here.
 *   <node>/etc/apt/                 apt nodes: sources.list (comments only), sources.list.d/
 *                                   kubernetes.list (or kubernetes.sources, deb822), keyrings/
 *   <node>/etc/yum.repos.d/         dnf nodes: kubernetes.repo as pkgs.k8s.io documents it
 *   <node>/usr/bin/                 kubeadm, kubelet, kubectl, crictl, written by their packages
 *   <node>/usr/lib/systemd/system/  kubelet.service (+ kubelet.service.d/10-kubeadm.conf)
 *   <node>/var/lib/apt/lists/       apt's lists, filled at creation as after `apt-get update`
 *   <node>/var/cache/dnf/           dnf's metadata cache (root; others get var/tmp/dnf-<user>-sim)
 *   <node>/var/lib/kubelet/         config.yaml, kubeadm-flags.env (install.dataDir)
 *   <node>/var/lib/etcd/            stacked etcd's data (backed up by `upgrade apply`)
 *   <node>/fakebin/                 first on PATH: sudo, uname, systemctl (unit kubelet),
 *                                   apt-get apt-cache apt-mark apt-config dpkg dpkg-query (apt)
 *                                   or dnf yum rpm (dnf), etcdctl (stacked control planes),
 *                                   swapon, and .kubeadm-tools.cjs they all run
 *   <node>/state/                   packages.json (the package database), knobs.json,
 *                                   kubeadm-node.json, the service state and the journals
 *                                   (commands.log: every tool call; service.log; sudo.log)
 *
 * PATH is fakebin, usr/bin, then a directory of links to the host's /usr/local/bin, /usr/bin
 * and /bin without their package managers and Kubernetes tools: so an EL node has no apt-get
 * and a Debian node no dnf, even on a host that has them (`command -v apt-get` tells the
 * truth). The kubelet runs as the unit `kubelet` (Type=simple, Restart=always) under the shared
 * fake systemctl; it reports `kubelet-started` at the installed kubelet package's version, so a
 * package upgrade changes `kubelet --version` but not the Node until `systemctl restart kubelet`.
 *
 * Knobs (state/knobs.json): setKubeletCrashVersions, setPackageInstallFailure, setKubeadmFailure,
 * setSwap. Readers: readCommandLog (node-fixture.ts), installedPackages, heldPackages,
 * repositoryFile, readKubeletConfig.
 */
import {randomBytes} from 'node:crypto'
import {existsSync} from 'node:fs'
import {copyFile, mkdir, readFile, readdir, rename, symlink, writeFile} from 'node:fs/promises'
import {dirname, join} from 'node:path'

import {
  CONTROL_PLANE_COMPONENTS,
  KUBEADM_ARCHES,
  KUBEADM_TOOLS_PATH,
  kubeadmDropIn,
  kubeadmTools,
  staticPodManifest,
  type EtcdTopology,
  type KubeadmArch,
  type KubeadmNodeJson,
  type NodePackageManager,
} from './kubeadm-fake.js'
import {
  NOTIFY_SCRIPT,
  q,
  realUname,
  sudoScript,
  systemctlScript,
  unameScript,
  writeEnvFile,
  type NodeFixture,
  type NodeRole,
} from './node-fixture.js'

const tools = kubeadmTools()

export type AptSourceFormat = 'one-line' | 'deb822'

export interface KubeadmNodeOptions {
  /** Parent directory; the node lives in `<root>/<name>` (which must not exist yet). */
  root: string
  name: string
  /** server: a control plane; agent: a worker. */
  role: NodeRole
  /** Kubernetes version of every installed package, and of the running kubelet. */
  version: string
  arch?: KubeadmArch
  /** The node's InternalIP (in the manifests and etcdctl's endpoints). */
  internalIP: string
  /** Base URL of the simulated API's control server. */
  controlUrl: string
  /** The package repository's origin (pkgs.k8s.io stand-in): `http://127.0.0.1:PORT`. */
  repoOrigin: string
  /** The release files' base (dl.k8s.io/release stand-in); kubeadm upgrade plan reads stable.txt there. */
  releaseUrl: string
  /** admin.conf's (and kubelet.conf's) content: a kubeconfig of the simulated API. */
  kubeconfig: string
  /** Default apt. */
  packageManager?: NodePackageManager
  /** apt: kubeadm kubelet kubectl on hold; dnf: the repository's exclude= line. Default true, as the docs set nodes up. */
  held?: boolean
  /** apt nodes: kubernetes.list (one-line, default) or kubernetes.sources (deb822). */
  aptSourceFormat?: AptSourceFormat
  /** Control planes: stacked (default) or external etcd. */
  etcd?: EtcdTopology
  /** `swapon --show` reports a swap file. */
  swap?: boolean
  /** Sessions log in as root (become: none). */
  loginAsRoot?: boolean
  /** Stacked control planes: etcdctl installed on the host (default true); else only inside the etcd container (crictl exec). */
  hostEtcdctl?: boolean
}

export interface KubeadmNodeFixture extends NodeFixture {
  readonly distribution: 'kubeadm'
  readonly packageManager: NodePackageManager
  readonly controlPlane: boolean
  /** Control planes: stacked or external; undefined on workers. */
  readonly etcd: EtcdTopology | undefined
  /** `<node>/etc/kubernetes` */
  readonly kubeDir: string
  /** `<node>/etc/apt/sources.list.d/kubernetes.list` (or .sources), or `<node>/etc/yum.repos.d/kubernetes.repo`. */
  readonly repoFile: string
  /** `<node>/var/lib/apt/lists` */
  readonly aptListsDir: string
  /** `<node>/var/lib/etcd` */
  readonly etcdDataDir: string
  /** `<node>/usr/lib/systemd/system/kubelet.service` */
  readonly unitFile: string
  readonly internalIP: string
}

export interface InstalledPackage {
  /** `1.31.4-1.1` (deb) or `1.31.4-150500.1.1` (rpm). */
  version: string
  arch: string
  /** apt-mark hold. */
  hold: boolean
  /** `half-configured` after a failed post-installation script. */
  status: 'installed' | 'half-configured'
}

export interface Knobs {
  /** Kubelet versions that crash on start on this node (the unit stays `activating`, the Node NotReady). */
  kubeletCrashVersions?: string[]
  /** Per package: `download` fails the fetch (nothing changes); `configure` fails dpkg's post-install (apt: half-configured). */
  installFailures?: Record<string, {stage: 'download' | 'configure'}>
  /** The next `kubeadm upgrade plan|apply|node` fails with this error (apply and node roll back). */
  kubeadmFailures?: Partial<Record<'plan' | 'apply' | 'node', string>>
  swap?: boolean
}

/** Host tools a kubeadm node must not see through PATH: the fakes (or their absence) stand for them. */
const HIDDEN_HOST_TOOLS = /^(apt|apt-.*|dpkg|dpkg-.*|dnf|dnf-3|dnf5|yum|microdnf|rpm|rpm.*|kubeadm|kubelet|kubectl|crictl|etcdctl|etcdutl|swapon|swapoff|systemctl|sudo|uname|rc-service|openrc|rc-status)$/

const hostBins = new Map<string, Promise<string>>()

/** `<root>/.hostbin`: links to the host's executables without the hidden ones, made once per root. */
function hostBin(root: string): Promise<string> {
  let made = hostBins.get(root)
  if (!made) {
    made = (async () => {
      const dir = join(root, '.hostbin')
      await mkdir(dir, {recursive: true})
      const seen = new Set<string>()
      for (const src of ['/usr/local/bin', '/usr/bin', '/bin']) {
        const names = await readdir(src).catch(() => [] as string[])
        for (const name of names) {
          if (seen.has(name) || HIDDEN_HOST_TOOLS.test(name)) continue
          seen.add(name)
          await symlink(join(src, name), join(dir, name)).catch((e: NodeJS.ErrnoException) => {
            if (e.code !== 'EEXIST') throw e
          })
        }
      }
      return dir
    })()
    hostBins.set(root, made)
  }
  return made
}

const fakePem = (what: string) => `-----BEGIN ${what}-----\n${randomBytes(48).toString('base64')}\n-----END ${what}-----\n`

export async function createKubeadmNodeFixture(options: KubeadmNodeOptions): Promise<KubeadmNodeFixture> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(options.name)) throw new Error(`kubeadm node: "${options.name}" is not a usable node name`)
  const arch = options.arch ?? 'amd64'
  if (!KUBEADM_ARCHES.includes(arch)) throw new Error(`kubeadm node ${options.name}: pkgs.k8s.io has no packages for ${arch}`)
  if (!tools.parseKube(options.version)) throw new Error(`kubeadm node ${options.name}: "${options.version}" is not a Kubernetes version like v1.31.4`)
  const controlPlane = options.role === 'server'
  if (!controlPlane && options.etcd !== undefined) throw new Error(`kubeadm node ${options.name}: workers run no etcd`)
  const packageManager = options.packageManager ?? 'apt'
  if (packageManager === 'dnf' && options.aptSourceFormat) throw new Error(`kubeadm node ${options.name}: aptSourceFormat is for apt nodes`)
  const held = options.held ?? true
  const etcd = controlPlane ? options.etcd ?? 'stacked' : undefined
  const dir = join(options.root, options.name)
  const at = (...p: string[]) => join(dir, ...p)
  const kubeDir = at('etc/kubernetes')
  const binDir = at('usr/bin')
  const kubeletDir = at('var/lib/kubelet')
  const repoFile = packageManager === 'dnf'
    ? at('etc/yum.repos.d/kubernetes.repo')
    : at('etc/apt/sources.list.d', options.aptSourceFormat === 'deb822' ? 'kubernetes.sources' : 'kubernetes.list')
  const fixture: KubeadmNodeFixture = {
    name: options.name,
    role: options.role,
    arch,
    distribution: 'kubeadm',
    serviceManager: 'systemd',
    serviceName: 'kubelet',
    dir,
    binDir,
    binaryPath: join(binDir, 'kubelet'),
    dataDir: kubeletDir,
    manifestsDir: join(kubeDir, 'manifests'),
    serverKind: undefined,
    packageOwned: undefined,
    ownerPackage: undefined,
    fakebinDir: at('fakebin'),
    stateDir: at('state'),
    envFile: at('env'),
    env: {},
    packageManager,
    controlPlane,
    etcd,
    kubeDir,
    repoFile,
    aptListsDir: at('var/lib/apt/lists'),
    etcdDataDir: at('var/lib/etcd'),
    unitFile: at('usr/lib/systemd/system/kubelet.service'),
    internalIP: options.internalIP,
  }
  await mkdir(options.root, {recursive: true})
  await mkdir(dir) // fails if it exists: a stale node would lie about its state
  Object.assign(fixture.env, {
    PATH: [fixture.fakebinDir, binDir, await hostBin(options.root)].join(':'),
    HOMELAB_SIM_NODE: options.name,
    HOMELAB_SIM_ROLE: options.role,
    HOMELAB_SIM_CONTROL: options.controlUrl,
    HOMELAB_SIM_ROOT: dir,
    HOMELAB_SIM_RELEASE_URL: options.releaseUrl,
  })
  if (options.loginAsRoot) fixture.env.HOMELAB_SIM_PRIVILEGED = '1'
  const dirs = [
    fixture.fakebinDir, fixture.stateDir, binDir, kubeletDir, fixture.manifestsDir, join(kubeDir, 'pki'), dirname(fixture.unitFile) + '/kubelet.service.d',
    ...(packageManager === 'apt' ? [at('etc/apt/sources.list.d'), at('etc/apt/keyrings'), join(fixture.aptListsDir, 'partial'), at('var/lib/dpkg')] : [at('etc/yum.repos.d'), at('var/cache/dnf')]),
    ...(etcd === 'stacked' ? [join(kubeDir, 'pki/etcd'), join(fixture.etcdDataDir, 'member/snap'), join(fixture.etcdDataDir, 'member/wal')] : []),
    ...(etcd === 'external' ? [join(kubeDir, 'pki/etcd')] : []),
  ]
  for (const d of dirs) await mkdir(d, {recursive: true})
  await writeEnvFile(fixture)

  const nodeJson: KubeadmNodeJson = {
    name: options.name,
    role: options.role,
    controlPlane,
    arch,
    packageManager,
    etcd: etcd ?? null,
    internalIP: options.internalIP,
    kubeDir,
    binDir,
    kubeletDir,
    etcdDataDir: fixture.etcdDataDir,
    unitFile: fixture.unitFile,
    etcdctlVersion: tools.etcdVersionFor(options.version).replace(/-\d+$/, ''),
  }
  const state = fixture.stateDir
  await writeFile(join(state, 'kubeadm-node.json'), JSON.stringify(nodeJson, null, 2) + '\n')
  await writeKnobs(fixture, {swap: options.swap ?? false})
  for (const log of ['service.log', 'sudo.log', 'k3s.log', 'commands.log']) await writeFile(join(state, log), '')
  await writeFile(join(state, 'arch'), `${arch}\n`)
  await writeFile(join(state, 'service.state'), 'active\n')
  await writeFile(join(state, 'service.since'), `${new Date().toISOString()}\n`)
  await writeFile(join(state, 'k3s.running'), `${options.version}\n`)

  // The packages as the install docs leave them, and what they put on disk.
  const db: Record<string, InstalledPackage & {repo?: string}> = {}
  const ctx = {root: dir, state, node: nodeJson}
  for (const pkg of tools.ALL_PACKAGES) {
    const version = packageManager === 'apt' ? tools.debVersion(pkg, options.version) : (({version: v, release}) => `${v}-${release}`)(tools.rpmEvr(pkg, options.version))
    db[pkg] = {
      version,
      arch: packageManager === 'apt' ? tools.DEB_ARCH[arch] : tools.RPM_ARCH[arch],
      hold: packageManager === 'apt' && held && tools.CORE_PACKAGES.includes(pkg),
      status: 'installed',
      ...(packageManager === 'dnf' ? {repo: 'kubernetes'} : {}),
    }
    tools.installPayload(ctx, pkg, version, {initial: true})
  }
  await writeFile(join(state, 'packages.json'), JSON.stringify(db, null, 2) + '\n')
  await writeFile(join(dirname(fixture.unitFile), 'kubelet.service.d/10-kubeadm.conf'), kubeadmDropIn(kubeDir, kubeletDir, binDir))
  await writeFile(join(kubeletDir, 'config.yaml'), tools.kubeletConfigYaml(options.version))
  await writeFile(join(kubeletDir, 'kubeadm-flags.env'), 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10"\n')

  await writeRepository(fixture, options, held)
  await writeKubernetesDir(fixture, options)

  // The fake tools: the shared library, one wrapper per tool, and the shared sh fakes.
  await copyFile(KUBEADM_TOOLS_PATH, join(fixture.fakebinDir, '.kubeadm-tools.cjs'))
  const wrapper = (tool: string) =>
    `#!/bin/sh\n# homelab simulation: ${tool} on node ${options.name}. Not ${tool}.\nexec ${q(process.execPath)} ${q(join(fixture.fakebinDir, '.kubeadm-tools.cjs'))} ${q(tool)} "$@"\n`
  const scripts: Record<string, string> = {
    sudo: sudoScript(fixture),
    uname: unameScript(fixture, {amd64: 'x86_64', arm64: 'aarch64', s390x: 's390x'}[arch], realUname()),
    '.sim-notify': NOTIFY_SCRIPT,
    systemctl: systemctlScript(fixture, {
      unit: 'kubelet',
      exec: [fixture.binaryPath, `--config=${kubeletDir}/config.yaml`, `--kubeconfig=${kubeDir}/kubelet.conf`],
      description: 'kubelet: The Kubernetes Node Agent',
      docs: 'https://kubernetes.io/docs/',
      fragment: fixture.unitFile,
      dropIns: [join(dirname(fixture.unitFile), 'kubelet.service.d/10-kubeadm.conf')],
      typeSimple: true,
      stopEvent: 'kubelet-stopped',
    }),
    swapon: wrapper('swapon'),
  }
  const managed = packageManager === 'apt' ? ['apt-get', 'apt-cache', 'apt-mark', 'apt-config', 'dpkg', 'dpkg-query'] : ['dnf', 'rpm']
  for (const tool of managed) scripts[tool] = wrapper(tool)
  if (packageManager === 'dnf') scripts.yum = wrapper('dnf')
  if (etcd === 'stacked' && options.hostEtcdctl !== false) scripts.etcdctl = wrapper('etcdctl')
  for (const [name, text] of Object.entries(scripts)) await writeFile(join(fixture.fakebinDir, name), text, {mode: 0o755})
  return fixture
}

/** The repository definition the install docs write, for the node's minor, and apt's lists as after `apt-get update`. */
async function writeRepository(fixture: KubeadmNodeFixture, options: KubeadmNodeOptions, held: boolean): Promise<void> {
  const minor = `v${tools.parseKube(options.version)!.major}.${tools.parseKube(options.version)!.minor}`
  const url = (format: 'deb' | 'rpm') => `${options.repoOrigin}/core:/stable:/${minor}/${format}/`
  if (fixture.packageManager === 'dnf') {
    await writeFile(fixture.repoFile, `[kubernetes]\nname=Kubernetes\nbaseurl=${url('rpm')}\nenabled=1\ngpgcheck=1\ngpgkey=${url('rpm')}repodata/repomd.xml.key\n${held ? 'exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n' : ''}`)
    return
  }
  const keyring = '/etc/apt/keyrings/kubernetes-apt-keyring.gpg'
  await writeFile(join(fixture.dir, 'etc/apt/keyrings/kubernetes-apt-keyring.gpg'), Buffer.concat([Buffer.from([0x99, 0x01, 0x0d]), randomBytes(64)]))
  await writeFile(join(fixture.dir, 'etc/apt/sources.list'), '# See sources.list(5) manpage for more information\n# Remember that you can only use "deb", "deb-src" or "deb822" lines here.\n')
  await writeFile(fixture.repoFile, options.aptSourceFormat === 'deb822'
    ? `Types: deb\nURIs: ${url('deb')}\nSuites: /\nSigned-By: ${keyring}\n`
    : `deb [signed-by=${keyring}] ${url('deb')} /\n`)
  // What `apt-get update` left when the node was installed: InRelease and Packages of the minor.
  const base = url('deb')
  for (const file of ['InRelease', 'Packages']) {
    const res = await fetch(base + file, {signal: AbortSignal.timeout(5000)}).catch(() => undefined)
    if (!res?.ok) continue
    await writeFile(join(fixture.aptListsDir, tools.aptListFileName(base) + file), Buffer.from(await res.arrayBuffer()))
  }
}

/** /etc/kubernetes as kubeadm init / join left it. */
async function writeKubernetesDir(fixture: KubeadmNodeFixture, options: KubeadmNodeOptions): Promise<void> {
  const k = fixture.kubeDir
  const put = (rel: string, text: string, mode = 0o600) => writeFile(join(k, rel), text, {mode})
  await put('kubelet.conf', options.kubeconfig)
  await put('pki/ca.crt', fakePem('CERTIFICATE'), 0o644)
  if (!fixture.controlPlane) return
  for (const conf of ['admin.conf', 'super-admin.conf', 'controller-manager.conf', 'scheduler.conf']) await put(conf, options.kubeconfig)
  for (const base of ['ca', 'apiserver', 'apiserver-kubelet-client', 'front-proxy-ca', 'front-proxy-client', 'apiserver-etcd-client']) {
    await put(`pki/${base}.crt`, fakePem('CERTIFICATE'), 0o644)
    await put(`pki/${base}.key`, fakePem('RSA PRIVATE KEY'))
  }
  await put('pki/sa.key', fakePem('RSA PRIVATE KEY'))
  await put('pki/sa.pub', fakePem('PUBLIC KEY'), 0o644)
  await put('pki/etcd/ca.crt', fakePem('CERTIFICATE'), 0o644)
  if (fixture.etcd === 'stacked') {
    await put('pki/etcd/ca.key', fakePem('RSA PRIVATE KEY'))
    for (const base of ['server', 'peer', 'healthcheck-client']) {
      await put(`pki/etcd/${base}.crt`, fakePem('CERTIFICATE'), 0o644)
      await put(`pki/etcd/${base}.key`, fakePem('RSA PRIVATE KEY'))
    }
    await writeFile(join(fixture.etcdDataDir, 'member/snap/db'), `homelab simulation: etcd data of ${fixture.name}\n`)
  }
  const podOptions = {
    node: fixture.name,
    ip: fixture.internalIP,
    version: options.version,
    etcdVersion: tools.etcdVersionFor(options.version),
    kubeDir: k,
    etcdDataDir: fixture.etcdDataDir,
    etcd: fixture.etcd!,
  }
  for (const c of [...CONTROL_PLANE_COMPONENTS, ...(fixture.etcd === 'stacked' ? (['etcd'] as const) : [])]) {
    await put(`manifests/${c}.yaml`, staticPodManifest(c, podOptions))
  }
}

/** The kubeadm fixture behind a node (throws for k3s and rke2 nodes). */
export function kubeadmFixture(fixture: NodeFixture): KubeadmNodeFixture {
  if (fixture.distribution !== 'kubeadm') throw new Error(`node ${fixture.name} is a ${fixture.distribution} node, not a kubeadm one`)
  return fixture as KubeadmNodeFixture
}

export async function readKnobs(fixture: Pick<NodeFixture, 'stateDir'>): Promise<Knobs> {
  return JSON.parse(await readFile(join(fixture.stateDir, 'knobs.json'), 'utf8').catch(() => '{}')) as Knobs
}

async function writeKnobs(fixture: Pick<NodeFixture, 'stateDir'>, knobs: Knobs): Promise<void> {
  const file = join(fixture.stateDir, 'knobs.json')
  const tmp = `${file}.${process.pid}.${randomBytes(3).toString('hex')}.tmp`
  await writeFile(tmp, JSON.stringify(knobs, null, 2) + '\n')
  await rename(tmp, file)
}

async function updateKnobs(fixture: KubeadmNodeFixture, change: (k: Knobs) => void): Promise<void> {
  const knobs = await readKnobs(fixture)
  change(knobs)
  await writeKnobs(fixture, knobs)
}

/** These kubelet versions crash on start on this node (`[]`: none). A restart at another version works. */
export async function setKubeletCrashVersions(fixture: KubeadmNodeFixture, versions: readonly string[]): Promise<void> {
  await updateKnobs(fixture, (k) => {
    k.kubeletCrashVersions = [...versions]
  })
}

/**
 * Installing this package fails on this node: `download` (apt: 404 for the .deb, dnf: all
 * mirrors failed; nothing changes) or `configure` (apt only: dpkg's post-installation script
 * fails, the package is left unpacked at the new version, half-configured). null: works again.
 */
export async function setPackageInstallFailure(fixture: KubeadmNodeFixture, pkg: string, stage: 'download' | 'configure' | null): Promise<void> {
  if (stage === 'configure' && fixture.packageManager === 'dnf') throw new Error('kubeadm node: dnf nodes simulate download failures only')
  await updateKnobs(fixture, (k) => {
    const failures = {...k.installFailures}
    if (stage === null) delete failures[pkg]
    else failures[pkg] = {stage}
    k.installFailures = failures
  })
}

/** `kubeadm upgrade plan|apply|node` fails on this node with this error (null: works again); apply and node leave the cluster as it was. */
export async function setKubeadmFailure(fixture: KubeadmNodeFixture, command: 'plan' | 'apply' | 'node', message: string | null): Promise<void> {
  await updateKnobs(fixture, (k) => {
    const failures = {...k.kubeadmFailures}
    if (message === null) delete failures[command]
    else failures[command] = message.replace(/\n/g, ' ')
    k.kubeadmFailures = failures
  })
}

/** Swap on (`swapon --show` lists /swapfile) or off. */
export async function setSwap(fixture: KubeadmNodeFixture, on: boolean): Promise<void> {
  await updateKnobs(fixture, (k) => {
    k.swap = on
  })
}

/** The package database: name → version, arch, hold, status. */
export async function installedPackages(fixture: Pick<NodeFixture, 'stateDir'>): Promise<Record<string, InstalledPackage>> {
  const db = JSON.parse(await readFile(join(fixture.stateDir, 'packages.json'), 'utf8')) as Record<string, InstalledPackage>
  for (const entry of Object.values(db)) delete (entry as {repo?: string}).repo
  return db
}

/** apt: the packages on hold (apt-mark showhold); dnf: those the kubernetes repository excludes. */
export async function heldPackages(fixture: KubeadmNodeFixture): Promise<string[]> {
  if (fixture.packageManager === 'apt') {
    const db = await installedPackages(fixture)
    return Object.keys(db).filter((n) => db[n]!.hold).sort()
  }
  const m = /^exclude\s*=\s*(.*)$/m.exec(await repositoryFile(fixture))
  return m ? m[1]!.split(/[\s,]+/).filter(Boolean).sort() : []
}

/** The repository definition's text (kubernetes.list / .sources / kubernetes.repo). */
export async function repositoryFile(fixture: KubeadmNodeFixture): Promise<string> {
  return readFile(fixture.repoFile, 'utf8')
}

/** `<node>/var/lib/kubelet/config.yaml`: kubeadm writes it at `upgrade node|apply`; its first line names the version. */
export async function readKubeletConfig(fixture: KubeadmNodeFixture): Promise<string> {
  return readFile(join(fixture.dataDir, 'config.yaml'), 'utf8')
}

/** kubeadm's backup directories under `<kubeDir>/tmp` (`kubeadm-backup-manifests-<date>`, `kubeadm-backup-etcd-<date>`). */
export async function kubeadmBackups(fixture: KubeadmNodeFixture): Promise<string[]> {
  const names = await readdir(join(fixture.kubeDir, 'tmp')).catch(() => [] as string[])
  return names.filter((n) => n.startsWith('kubeadm-backup-')).sort()
}

/** Image tags in this node's static pod manifests. */
export async function manifestVersions(fixture: KubeadmNodeFixture): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const c of [...CONTROL_PLANE_COMPONENTS, 'etcd']) {
    const file = join(fixture.manifestsDir, `${c}.yaml`)
    if (!existsSync(file)) continue
    const m = /image: \S+:(\S+)/.exec(await readFile(file, 'utf8'))
    if (m) out[c] = m[1]!
  }
  return out
}
