import {readFile} from 'node:fs/promises'
import {homedir, userInfo} from 'node:os'
import path from 'node:path'

import {loadConfig} from './config/load.js'
import type {HomelabConfig} from './config/schema.js'
import {buildInventory, type Inventory, type InventoryNode} from './inventory.js'
import {ReleaseSource} from './k3s/release.js'
import {KubeClients, loadKubeConfig} from './kube/client.js'
import {listClusterNodes} from './kube/nodes.js'
import {JournalStore} from './saga/journal.js'
import {resolveSshTarget} from './transport/ssh-config.js'
import {LocalTransport} from './transport/local-transport.js'
import {TransportPool} from './transport/pool.js'
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
  const {config, file} = await loadConfig({explicit: options.configPath, env, cwd: options.cwd ?? process.cwd(), home})
  const {kubeConfig} = loadKubeConfig({kubeconfig: options.kubeconfig, context: options.context, fromFile: config.kubernetes, env, home})
  const kube = new KubeClients(kubeConfig)
  const sshConfigPath = path.join(home, '.ssh', 'config')
  const sshConfigText = await readFile(sshConfigPath, 'utf8').catch(() => undefined)
  const localUser = userInfo().username
  let inventory: Inventory | undefined
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
      askPassphrase: options.askPassphrase,
      connectTimeoutMs: config.ssh.connectTimeout,
      keepaliveIntervalMs: config.ssh.keepaliveInterval,
      home,
    })
  })

  const session: Session = {
    config,
    configFile: file,
    kube,
    async loadInventory() {
      inventory = buildInventory(config, await listClusterNodes(kube))
      return inventory
    },
    async connect(node) {
      return pool.get(node.name)
    },
    upgradeDeps() {
      return {
        kube,
        config,
        connect: (node) => session.connect(node),
        loadInventory: () => session.loadInventory(),
        release: new ReleaseSource({releaseUrl: config.install.releaseUrl, cacheDir: cacheDir(env, home)}),
        journals: new JournalStore({env, homedir: home}),
      }
    },
    async close() {
      await pool.closeAll().catch(() => undefined)
    },
  }
  return session
}
