/**
 * The real dependencies of `homelab init`: the kubeconfig's cluster through the Kubernetes client,
 * and SSH transports opened the way a session opens them (homelab.yaml's defaults, here none,
 * over ~/.ssh/config over OpenSSH's). Kept apart from init.ts so that the logic runs on fakes.
 */
import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {detectDistribution, detectPackageDistribution} from '../distributions/detect.js'
import {HomelabError} from '../errors.js'
import {apiFailure} from '../kube/api-errors.js'
import {KubeClients, loadKubeConfig} from '../kube/client.js'
import {listClusterNodes} from '../kube/nodes.js'
import {resolveSshTarget} from '../transport/ssh-config.js'
import {SshKeyStore} from '../transport/ssh-keys.js'
import {SshTransport} from '../transport/ssh-transport.js'
import type {InitDeps} from './init.js'

export interface OpenInitOptions {
  kubeconfig?: string
  context?: string
  acceptNewHostKeys?: boolean
  env: NodeJS.ProcessEnv
  home: string
  localUser: string
  schemaLocation: string
  askPassphrase?: (keyPath: string) => Promise<string | undefined>
  signal?: AbortSignal
}

// What a session uses when homelab.yaml says nothing (the schema's defaults).
const CONNECT_TIMEOUT_MS = 10_000
const KEEPALIVE_MS = 15_000

export async function openInit(options: OpenInitOptions): Promise<InitDeps> {
  const {kubeConfig} = loadKubeConfig({kubeconfig: options.kubeconfig, context: options.context, env: options.env, home: options.home})
  const kube = new KubeClients(kubeConfig)
  const sshConfigPath = path.join(options.home, '.ssh', 'config')
  const sshConfigText = await readFile(sshConfigPath, 'utf8').catch(() => undefined)
  const knownHosts = path.join(options.home, '.ssh', 'known_hosts')
  // The default kubeconfig needs no line in the file; another one does, absolute.
  const kubeconfig = options.kubeconfig ? path.resolve(options.kubeconfig) : options.env.KUBECONFIG && !options.env.KUBECONFIG.includes(path.delimiter) ? path.resolve(options.env.KUBECONFIG) : undefined
  const keys = new SshKeyStore()
  return {
    async listNodes() {
      try {
        return await listClusterNodes(kube, options.signal)
      } catch (error) {
        const {code} = apiFailure(error)
        throw new HomelabError(`cannot list the nodes of ${kube.server}${code ? ` (HTTP ${code})` : ''}: ${(error as Error).message.split('\n')[0]}`, {
          cause: error,
          hint: code === 401 || code === 403 ? 'use an admin kubeconfig (--kubeconfig) or another --context' : 'check that the API server is reachable from here, or pick another --context',
        })
      }
    },
    async detectDistribution(nodes) {
      return detectDistribution(nodes) ?? (await detectPackageDistribution(kube, nodes))
    },
    connect(node) {
      const target = resolveSshTarget({host: node.host, explicit: {knownHostsFiles: [knownHosts]}, sshConfigText, sshConfigPath, localUser: options.localUser, home: options.home})
      return new SshTransport({
        node: node.name,
        target,
        become: 'sudo',
        acceptNewHostKeys: options.acceptNewHostKeys,
        env: options.env,
        keys,
        askPassphrase: options.askPassphrase,
        connectTimeoutMs: CONNECT_TIMEOUT_MS,
        keepaliveIntervalMs: KEEPALIVE_MS,
        home: options.home,
      })
    },
    sshConfigText,
    home: options.home,
    localUser: options.localUser,
    kubernetes: {kubeconfig, context: kubeConfig.getCurrentContext() || undefined, server: kube.server},
    schemaLocation: options.schemaLocation,
    signal: options.signal,
  }
}
