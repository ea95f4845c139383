import {readFile} from 'node:fs/promises'
import {homedir, userInfo} from 'node:os'
import path from 'node:path'

import {loadConfig} from './config/load.js'
import type {HomelabConfig} from './config/schema.js'
import {detectDistribution, detectPackageDistribution} from './distributions/detect.js'
import {distributionOf, kubeconfigPaths, type AnyDistribution} from './distributions/index.js'
import {ConfigError} from './errors.js'
import {buildInventory, type Inventory, type InventoryNode} from './inventory.js'
import {KubeClients, loadKubeConfig} from './kube/client.js'
import {listClusterNodes, type ClusterNode} from './kube/nodes.js'
import {apiFailure} from './kube/api-errors.js'
import {ReleaseSource} from './release/release-source.js'
import {JournalStore} from './saga/journal.js'
import {resolveSshTarget} from './transport/ssh-config.js'
import {LocalTransport} from './transport/local-transport.js'
import {TransportPool} from './transport/pool.js'
import {SshKeyStore} from './transport/ssh-keys.js'
import {SshTransport} from './transport/ssh-transport.js'
import type {Transport} from './transport/types.js'
import type {RunnerDeps} from './upgrade/run-upgrade.js'

export interface SessionOptions {
  configPath?: string
  kubeconfig?: string
  context?: string
  acceptNewHostKeys?: boolean
  signal?: AbortSignal
  env?: NodeJS.ProcessEnv
  cwd?: string
  home?: string
  /** Asked for an encrypted key's passphrase (the CLI prompts on a TTY). */
  askPassphrase?: (keyPath: string) => Promise<string | undefined>
}

/** What one command invocation works with: the cluster file, the API, and one connection per node. */
export interface Session {
  config: HomelabConfig
  configFile: string
  distribution: AnyDistribution
  /** How the distribution was chosen: `distribution: rke2 in homelab.yaml`, `detected from kubelet …`. */
  distributionSource: string
  kube: KubeClients
  loadInventory(): Promise<Inventory>
  connect(node: InventoryNode): Promise<Transport>
  upgradeDeps(): Omit<RunnerDeps, 'signal' | 'onEvent'>
  close(): Promise<void>
}

function cacheDir(env: NodeJS.ProcessEnv, home: string): string {
  const base = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(home, '.cache')
  return path.join(base, 'homelab', 'releases')
}

export async function openSession(options: SessionOptions = {}): Promise<Session> {
  const env = options.env ?? process.env
  const home = options.home ?? homedir()
  const search = {explicit: options.configPath, env, cwd: options.cwd ?? process.cwd(), home}
  const loaded = await loadConfig(search)
  let config = loaded.config
  const {file} = loaded
  const {kubeConfig} = loadKubeConfig({kubeconfig: options.kubeconfig, context: options.context, fromFile: config.kubernetes, env, home})
  const kube = new KubeClients(kubeConfig)

  // The nodes' kubelet versions name the distribution; a file that names another one is wrong.
  let firstList: ClusterNode[] | undefined = await listClusterNodes(kube).catch((error: unknown) => refusedCredentials(error, kube.server))
  const detected = detectDistribution(firstList) ?? (await detectPackageDistribution(kube, firstList))
  let distributionSource = `distribution: ${config.distribution} in ${file}`
  if (loaded.explicit.distribution) {
    if (detected && detected.name !== config.distribution) {
      throw new ConfigError(`${file} says distribution: ${config.distribution}, but the cluster runs ${detected.name} (${detected.evidence})`, {
        file,
        hint: `set distribution: ${detected.name} in ${file}, or point the kubeconfig at the ${config.distribution} cluster`,
      })
    }
  } else if (detected) {
    if (detected.name !== config.distribution) config = (await loadConfig({...search, defaultDistribution: detected.name})).config
    distributionSource = `${detected.name}, detected from ${detected.evidence}`
  } else {
    distributionSource = `${config.distribution} (the default: no node's kubelet version names a distribution)`
  }
  const distribution = distributionOf(config.distribution)
  const sshConfigPath = path.join(home, '.ssh', 'config')
  const sshConfigText = await readFile(sshConfigPath, 'utf8').catch(() => undefined)
  const localUser = userInfo().username
  let inventory: Inventory | undefined
  const keys = new SshKeyStore()
  const pool = new TransportPool<Transport>((name) => {
    const node = inventory?.nodes.find((n) => n.name === name)
    if (!node) throw new Error(`node ${name} is not in the inventory`)
    if (node.connection === 'local') return new LocalTransport({node: node.name, become: node.ssh.become, env})
    const target = resolveSshTarget({
      host: node.host,
      explicit: {
        user: node.ssh.user,
        port: node.ssh.port,
        identityFiles: node.ssh.identityFile ? [node.ssh.identityFile] : undefined,
        proxyJump: node.ssh.proxyJump,
        knownHostsFiles: [config.ssh.knownHosts],
      },
      sshConfigText,
      sshConfigPath,
      localUser,
      home,
    })
    return new SshTransport({
      node: node.name,
      target,
      become: node.ssh.become,
      acceptNewHostKeys: options.acceptNewHostKeys,
      env,
      keys,
      askPassphrase: options.askPassphrase,
      connectTimeoutMs: config.ssh.connectTimeout,
      keepaliveIntervalMs: config.ssh.keepaliveInterval,
      home,
    })
  })

  const session: Session = {
    config,
    configFile: file,
    distribution,
    distributionSource,
    kube,
    async loadInventory() {
      // The list read for detection serves the first inventory; later ones (between hops) read again.
      const nodes = firstList ?? (await listClusterNodes(kube))
      firstList = undefined
      inventory = buildInventory(config, nodes, {binDirExplicit: loaded.explicit.binDir})
      return inventory
    },
    async connect(node) {
      return pool.get(node.name)
    },
    upgradeDeps() {
      return {
        kube,
        config,
        distribution,
        distributionSource,
        connect: (node) => session.connect(node),
        loadInventory: () => session.loadInventory(),
        // Only single-binary distributions download a release; kubeadm's nodes install packages.
        release: distribution.install === 'binary' ? new ReleaseSource({distribution, releaseUrl: config.install.releaseUrl, cacheDir: cacheDir(env, home)}) : undefined,
        journals: new JournalStore({env, homedir: home}),
      }
    },
    async close() {
      await pool.closeAll().catch(() => undefined)
    },
  }
  return session
}

/** The first API call says whether the kubeconfig's credentials work: 401 and 403 are config errors with the fix. */
function refusedCredentials(error: unknown, server: string): never {
  const {code} = apiFailure(error)
  if (code === 401) {
    throw new ConfigError(`the API server ${server} refused the kubeconfig's credentials (401 Unauthorized)`, {
      cause: error,
      hint: `the token or client certificate is wrong or expired: copy a fresh kubeconfig from a server (${kubeconfigPaths()}), or pick another --context`,
    })
  }
  if (code === 403) {
    throw new ConfigError(`the kubeconfig's user may not list nodes on ${server} (403 Forbidden)`, {cause: error, hint: 'use an admin kubeconfig: homelab reads and cordons nodes, drains pods and takes a Lease in kube-system'})
  }
  throw error
}
