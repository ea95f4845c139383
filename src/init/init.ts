/**
 * `homelab init`: a homelab.yaml written from what is already there. The kubeconfig's cluster
 * gives the nodes (names, roles with split roles, InternalIP, arch) and the distribution (kubelet
 * versions); ~/.ssh/config gives how to reach a node when one of its Host patterns matches the
 * node's name or address; then every node is tried over SSH, read-only, as an upgrade would reach
 * it (login, sudo -n, where the binary is). Only nodes that work are written; each other one is
 * a comment saying why. The text is checked by homelab's own parser before anyone sees it.
 */
import SSHConfig from 'ssh-config'
import {stringify} from 'yaml'

import type {DetectedDistribution} from '../distributions/detect.js'
import {DEFAULT_DISTRIBUTION, DISTRIBUTIONS, type AnyDistribution} from '../distributions/index.js'
import {HomelabError, isHomelabError} from '../errors.js'
import type {ClusterNode} from '../kube/nodes.js'
import {findBinDir} from '../node/node-facts.js'
import {script} from '../node/node-ops.js'
import {settleWithConcurrency} from '../saga/concurrency.js'
import {resolveSshTarget} from '../transport/ssh-config.js'
import type {Transport} from '../transport/types.js'
import {parseConfig} from '../config/load.js'
import {schemaModeline} from '../config/schema-json.js'

export const NEXT_COMMAND = 'homelab k8s upgrade --to stable --dry-run'

export interface InitDeps {
  /** The cluster's Nodes, from the kubeconfig's context. */
  listNodes(): Promise<ClusterNode[]>
  detectDistribution(nodes: readonly ClusterNode[]): Promise<DetectedDistribution | undefined>
  /** A transport to `host` as an upgrade would open it (login user, port, keys from ~/.ssh/config). */
  connect(node: {name: string; host: string}): Transport
  /** Contents of ~/.ssh/config, if there is one. */
  sshConfigText?: string
  /** For resolving ~/.ssh/config as OpenSSH does (%u, ~, the default user). */
  home: string
  localUser: string
  /** The kubeconfig (when it was not the default) and context to write. */
  kubernetes: {kubeconfig?: string; context?: string; server: string}
  /** Where the JSON Schema is, for the modeline. */
  schemaLocation: string
  now?: () => Date
  signal?: AbortSignal
}

export interface InitNode {
  name: string
  role: 'server' | 'agent'
  serverKind?: string
  internalIP?: string
  arch?: string
  kubeletVersion: string
  /** What the file says to connect to: a ~/.ssh/config alias (the node's name) or the address. */
  host: string
  /** `~/.ssh/config Host server-1`, when a Host pattern matched. */
  sshConfigMatch?: string
  ok: boolean
  /** Why the node was left out (a comment in the file). */
  problem?: string
  /** Found on the node: where the binary is (when not the installer's default), and whether to sudo. */
  binDir?: string
  binDirFrom?: string
  become?: 'sudo' | 'none'
}

export interface InitResult {
  distribution: string
  distributionSource: string
  nodes: InitNode[]
  /** The file's text, checked by homelab's parser. */
  text: string
  next: string
}

/** Is some Host block (not only `Host *`) of ~/.ssh/config about this name? */
export function sshConfigMatches(sshConfigText: string | undefined, name: string): boolean {
  if (!sshConfigText || !name) return false
  const config = SSHConfig.parse(sshConfigText)
  const opts = {ignoreCase: true, matchExec: false} as const
  // What `Host *` (or any catch-all) gives, every name gets: a match is what differs from that.
  const nobody = JSON.stringify(config.compute('homelab-init.invalid', opts))
  return JSON.stringify(config.compute(name, opts)) !== nobody
}

/** `~/.ssh/config: pi@10.0.0.11 port 2222`, as OpenSSH will resolve the host. */
function describeSshConfig(host: string, deps: Pick<InitDeps, 'sshConfigText' | 'home' | 'localUser'>): string {
  const t = resolveSshTarget({host, sshConfigText: deps.sshConfigText, localUser: deps.localUser, home: deps.home})
  const via = t.proxyJump.length > 0 ? ` via ${t.proxyJump.map((hop) => hop.alias).join(',')}` : ''
  return `~/.ssh/config: ${t.user}@${t.host} port ${t.port}${via}`
}

/** The first line of an error, with its fix. */
function why(error: unknown): string {
  if (isHomelabError(error)) return error.oneLine().split('\n')[0]
  return error instanceof Error ? error.message.split('\n')[0] : String(error)
}

/** Where the distribution's binary is on the node, and how that was found (read-only). */
async function locateBinary(transport: Transport, distribution: AnyDistribution, role: 'server' | 'agent', signal?: AbortSignal): Promise<{binDir: string; from: string} | undefined> {
  if (distribution.install === 'packages') {
    const out = (await script(transport, 'command -v "$1" || true', [distribution.upgrader], {signal})).trim()
    return out.startsWith('/') ? {binDir: out.slice(0, out.lastIndexOf('/')) || '/', from: `command -v ${distribution.upgrader}`} : undefined
  }
  const installed = await findBinDir(transport, distribution, signal)
  if (installed) return {binDir: installed, from: 'the installer\'s directory'}
  // Else the service says where it runs the binary from: systemd's ExecStart, OpenRC's command=.
  const service = distribution.services[role]
  const fromUnit = (
    await script(
      transport,
      '{ systemctl cat "$1" 2>/dev/null | sed -n "s/^ExecStart=[-@+!:]*//p"; [ -f "/etc/init.d/$1" ] && sed -n "s/^command=//p" "/etc/init.d/$1" | tr -d "\\"\'"; } | head -n 1',
      [service],
      {signal},
    )
  ).trim().split(/\s+/)[0] ?? ''
  if (fromUnit.startsWith('/') && fromUnit.endsWith(`/${distribution.binary}`)) return {binDir: fromUnit.slice(0, -distribution.binary.length - 1) || '/', from: `the ${service} service`}
  const onPath = (await script(transport, 'command -v "$1" || true', [distribution.binary], {signal})).trim()
  if (onPath.startsWith('/')) return {binDir: onPath.slice(0, onPath.lastIndexOf('/')) || '/', from: 'PATH'}
  return undefined
}

/** Tries one node as an upgrade would reach it: login, sudo, the binary. Never changes anything. */
async function probe(node: InitNode, distribution: AnyDistribution, deps: InitDeps): Promise<void> {
  let transport: Transport | undefined
  try {
    transport = deps.connect({name: node.name, host: node.host})
    const uid = (await transport.run(['id', '-u'], {signal: deps.signal, timeoutMs: 30_000})).trim()
    // sudo where it works (for root too: harmless); root without a working sudo needs none.
    const sudo = await transport.exec(['true'], {privileged: true, signal: deps.signal, timeoutMs: 30_000})
    node.become = sudo.exitCode === 0 ? 'sudo' : uid === '0' ? 'none' : undefined
    if (!node.become) {
      node.ok = false
      node.problem = `sudo -n asks for a password or is not allowed (${sudo.stderr.trim().split('\n')[0] || `exit ${sudo.exitCode}`}) (fix: allow passwordless sudo for the login user, or log in as root)`
      return
    }
    const found = await locateBinary(transport, distribution, node.role, deps.signal)
    const wanted = distribution.install === 'packages' ? distribution.upgrader : distribution.binary
    if (!found) {
      node.ok = false
      node.problem = `no ${wanted} found (looked in ${distribution.binDirs.join(', ')}${distribution.install === 'binary' ? `, the ${distribution.services[node.role]} service` : ''} and PATH) (fix: add the node by hand with install: {binDir: <dir>})`
      return
    }
    if (found.binDir !== distribution.binDirs[0]) {
      node.binDir = found.binDir
      node.binDirFrom = found.from
    }
    node.ok = true
  } catch (error) {
    node.ok = false
    node.problem = why(error)
  } finally {
    await transport?.close().catch(() => undefined)
  }
}

const scalar = (value: unknown) => stringify(value, {lineWidth: 0}).trimEnd()

function nodeFacts(node: InitNode): string {
  const kind = node.serverKind && node.serverKind !== 'etcd+control-plane' ? `${node.serverKind} only` : node.role === 'server' ? 'etcd+control-plane' : undefined
  return [kind, node.internalIP ? `InternalIP ${node.internalIP}` : undefined, node.arch, `kubelet ${node.kubeletVersion}`].filter(Boolean).join(', ')
}

/** The file's text: the modeline, how it was made, then every setting found, with comments saying where from. */
export function renderInitFile(result: Omit<InitResult, 'text' | 'next'>, deps: Pick<InitDeps, 'kubernetes' | 'schemaLocation' | 'now'>): string {
  const now = (deps.now ?? (() => new Date()))()
  const ok = result.nodes.filter((n) => n.ok)
  // Root logins everywhere need no sudo; else the few root nodes say so themselves.
  const become = ok.length > 0 && ok.every((n) => n.become === 'none') ? 'none' : 'sudo'
  const lines = [
    schemaModeline(deps.schemaLocation),
    `# Written by homelab init on ${now.toISOString().slice(0, 19)}Z from the cluster at ${deps.kubernetes.server}.`,
    `# Every node below answered over SSH; check the file, then run: ${NEXT_COMMAND}`,
    `distribution: ${scalar(result.distribution)}  # ${result.distributionSource}`,
  ]
  if (deps.kubernetes.kubeconfig || deps.kubernetes.context) {
    lines.push('kubernetes:')
    if (deps.kubernetes.kubeconfig) lines.push(`  kubeconfig: ${scalar(deps.kubernetes.kubeconfig)}`)
    if (deps.kubernetes.context) lines.push(`  context: ${scalar(deps.kubernetes.context)}`)
  }
  lines.push('ssh:', `  become: ${become}  # ${become === 'sudo' ? 'sudo -n worked on every node written below' : 'every node logs in as root'}`, 'nodes:')
  for (const node of result.nodes) {
    if (!node.ok) {
      lines.push(`  # ${node.name}: left out, ${node.problem}`)
      lines.push(`  # - {name: ${scalar(node.name)}, host: ${scalar(node.host)}, role: ${node.role}}`)
      continue
    }
    lines.push(`  - name: ${scalar(node.name)}`)
    lines.push(`    host: ${scalar(node.host)}${node.sshConfigMatch ? `  # ${node.sshConfigMatch}` : ''}`)
    lines.push(`    role: ${node.role}  # ${nodeFacts(node)}`)
    if (node.become && node.become !== become) lines.push(`    ssh: {become: ${node.become}}  # logs in as root`)
    if (node.binDir) lines.push(`    install: {binDir: ${scalar(node.binDir)}}  # from ${node.binDirFrom}`)
  }
  return `${lines.join('\n')}\n`
}

/**
 * Reads the cluster, tries every node, and returns the file's text (checked by homelab's parser).
 * Throws when no server answered: such a file could not be used.
 */
export async function initConfig(deps: InitDeps): Promise<InitResult> {
  const clusterNodes = await deps.listNodes()
  if (clusterNodes.length === 0) throw new HomelabError(`the cluster at ${deps.kubernetes.server} lists no nodes`, {hint: 'point --kubeconfig or --context at your homelab\'s cluster'})
  const detected = await deps.detectDistribution(clusterNodes)
  const distribution = DISTRIBUTIONS[detected?.name ?? DEFAULT_DISTRIBUTION]
  const nodes: InitNode[] = clusterNodes
    .map((n) => {
      const byName = sshConfigMatches(deps.sshConfigText, n.name)
      const byAddress = !byName && n.internalIP !== undefined && sshConfigMatches(deps.sshConfigText, n.internalIP)
      const host = byName ? n.name : (n.internalIP ?? n.name)
      return {
        name: n.name,
        role: n.role,
        serverKind: n.serverKind,
        internalIP: n.internalIP,
        arch: n.architecture,
        kubeletVersion: n.kubeletVersion,
        host,
        ...(byName || byAddress ? {sshConfigMatch: describeSshConfig(host, deps)} : {}),
        ok: false,
      }
    })
    .sort((a, b) => (a.role === b.role ? a.name.localeCompare(b.name) : a.role === 'server' ? -1 : 1))
  await settleWithConcurrency(nodes, 8, (node) => probe(node, distribution, deps))

  const partial = {
    distribution: distribution.name,
    distributionSource: detected ? `detected from ${detected.evidence}` : `the default: no kubelet version names a distribution`,
    nodes,
  }
  const text = renderInitFile(partial, deps)
  if (!nodes.some((n) => n.ok && n.role === 'server')) {
    const reasons = nodes.filter((n) => !n.ok).map((n) => `${n.name}: ${n.problem}`)
    throw new HomelabError(`no server answered over SSH, so no usable homelab.yaml can be written; nothing was written:\n  ${reasons.join('\n  ')}`, {
      hint: 'fix the first problem above (a Host entry in ~/.ssh/config with HostName, User, Port and IdentityFile is the usual way), then run homelab init again',
    })
  }
  // What we write must load: the same parser every command uses.
  parseConfig(text, 'homelab.yaml')
  return {...partial, text, next: NEXT_COMMAND}
}
