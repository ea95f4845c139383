import {isAbsolute, posix, resolve} from 'node:path'

import {z} from '../bundled/zod.js'
import {DEFAULT_DISTRIBUTION, DISTRIBUTIONS} from '../distributions/index.js'
import {DURATION_FORMS, durationMs} from '../duration.js'
import {NOTIFY_EVENTS, NOTIFY_FORMATS} from '../notify/events.js'
import type {Distribution} from '../versions/release-version.js'

/**
 * The cluster file's schema. Every default lives here and nowhere else; the docs in README.md
 * mirror this file. Durations come out as milliseconds, local paths absolute (`~` expanded,
 * relative ones resolved against the config file's directory).
 */

/** Where `{path}` appears in a hint, the formatter puts the setting's path (`nodes[2].host`). */
export interface ProblemParams {
  hint: string
}

type Ctx = z.RefinementCtx

function problem(ctx: Ctx, message: string, hint: string): void {
  ctx.addIssue({code: 'custom', message, params: {hint} satisfies ProblemParams})
}

/** Install defaults that depend on the distribution (from its descriptor); filled in after parsing. */
export function distributionDefaults(name: Distribution): {binDir: string; dataDir: string; configDir: string; releaseUrl: string; channelUrl: string} {
  const d = DISTRIBUTIONS[name]
  return {binDir: d.binDirs[0], dataDir: d.dataDir, configDir: d.configDir, releaseUrl: d.releaseUrl, channelUrl: d.channelUrl}
}

export interface SchemaOptions {
  /** The distribution when the file names none (detected from the cluster); else DEFAULT_DISTRIBUTION. */
  defaultDistribution?: Distribution
}

// Kubernetes' IsDNS1123Subdomain: what a Node's metadata.name may be.
const NODE_NAME_RE = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/
const NAMESPACE_RE = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/
// One ProxyJump hop as OpenSSH takes it: [ssh://][user@]host[:port], host possibly [IPv6].
const JUMP_RE = /^(?:ssh:\/\/)?(?:[^\s@/]+@)?(?:\[[0-9A-Fa-f:.%\w]+\]|[^\s@/:[\]-][^\s@/:[\]]*)(?::\d{1,5})?$/

/** Where `~` and relative local paths are anchored. */
export interface PathContext {
  home: string
  /** The config file's directory. */
  baseDir: string
}

/** Local (CLI-side) path: `~/x` → home, relative → next to the config file. */
export function resolveLocalPath(value: string, ctx: PathContext): string {
  if (value === '~') return ctx.home
  if (value.startsWith('~/')) return resolve(ctx.home, value.slice(2))
  return isAbsolute(value) ? resolve(value) : resolve(ctx.baseDir, value)
}

/**
 * What the JSON Schema (schema-json.ts) says of a setting that zod cannot describe by itself (a
 * transform from `unknown`, such as a duration). Read only by the JSON Schema generator.
 */
export const jsonSchemaHints = z.registry<{jsonSchema: Record<string, unknown>}>()

/** A duration as the file may write it: `30s`, `5m`, `1h30m`, `250ms`, or whole seconds. */
const DURATION_JSON_SCHEMA = {
  anyOf: [
    {type: 'string', pattern: '^\\s*(?:\\d+|(?:(?:\\d+(?:\\.\\d+)?|\\.\\d+)(?:ms|h|m|s))+)\\s*$'},
    {type: 'integer', minimum: 0},
  ],
  description: `a duration: ${DURATION_FORMS}`,
}

/** One hook phase: argv lists, `{argv, timeout}`, or `{shell, timeout}` (the only form run by sh -c). */
function hookList() {
  return z
    .array(
      z.union([
        z.array(z.string().min(1)).min(1),
        z.strictObject({argv: z.array(z.string().min(1)).min(1), timeout: duration().optional()}),
        z.strictObject({shell: z.string().min(1), timeout: duration().optional()}),
      ]),
    )
    .default([])
}

function duration(options: {allowZero?: boolean} = {}) {
  const schema = z.unknown().transform((value, ctx): number => {
    const ms = typeof value === 'string' || typeof value === 'number' ? durationMs(value) : undefined
    if (ms === undefined) {
      problem(ctx, `${JSON.stringify(value)} is not a duration (use ${DURATION_FORMS})`, 'set {path} to a duration such as 5m')
      return z.NEVER
    }
    if (ms === 0 && !options.allowZero) {
      problem(ctx, 'must be longer than 0 (every wait is bounded)', 'set {path} to a duration such as 5m')
      return z.NEVER
    }
    return ms
  })
  jsonSchemaHints.add(schema, {jsonSchema: DURATION_JSON_SCHEMA})
  return schema
}

function localPath(pathCtx: PathContext) {
  return z
    .string()
    .min(1)
    .transform((value) => resolveLocalPath(value, pathCtx))
}

const remoteDir = z
  .string()
  .min(1)
  .superRefine((value, ctx) => {
    if (!value.startsWith('/')) {
      problem(ctx, `${JSON.stringify(value)} is not an absolute path on the node`, 'set {path} to an absolute path such as /usr/local/bin (no ~: it is a path on the node)')
    }
  })
  .transform((value) => (value === '/' ? value : posix.normalize(value).replace(/\/+$/, '')))

const baseUrl = z
  .string()
  .min(1)
  .superRefine((value, ctx) => {
    let url: URL | undefined
    try {
      url = new URL(value)
    } catch {
      url = undefined
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
      problem(ctx, `${JSON.stringify(value)} is not an http(s) URL`, 'set {path} to a URL such as https://…, or remove it to use the default')
    }
  })
  .transform((value) => value.replace(/\/+$/, ''))

const user = z.string().superRefine((value, ctx) => {
  if (!/^[^\s@:/-][^\s@:/]*$/.test(value)) {
    problem(ctx, `${JSON.stringify(value)} is not a user name`, 'set {path} to the login name only, e.g. root (no @, spaces or leading -)')
  }
})

const port = z.number().int().min(1).max(65535)

const become = z.enum(['sudo', 'none'])

const proxyJump = z.string().superRefine((value, ctx) => {
  if (value === 'none') return
  const bad = value.split(',').find((hop) => !JUMP_RE.test(hop.trim()))
  if (bad !== undefined) {
    problem(ctx, `${JSON.stringify(bad)} is not a jump host`, 'set {path} like OpenSSH\'s ProxyJump: [user@]host[:port], several separated by commas')
  }
})

const host = z.string().superRefine((value, ctx) => {
  if (value.includes('@')) {
    problem(ctx, `${JSON.stringify(value)} contains a user name`, 'put only the address in {path}, and the user in ssh.user of that node')
  } else if (/^[^:]+:\d+$/.test(value)) {
    problem(ctx, `${JSON.stringify(value)} contains a port`, 'put only the address in {path}, and the port in ssh.port of that node')
  } else if (!/^[^\s/\\-][^\s/\\]*$/.test(value)) {
    problem(ctx, `${JSON.stringify(value)} is not a host name or address`, 'set {path} to an IP address, a DNS name or a Host alias from ~/.ssh/config')
  }
})

const nodeName = z.string().superRefine((value, ctx) => {
  if (value.length > 253 || !NODE_NAME_RE.test(value)) {
    problem(
      ctx,
      `${JSON.stringify(value)} is not a valid Kubernetes node name (lowercase letters, digits, "-" and ".")`,
      'set {path} to the node\'s name exactly as `kubectl get nodes` shows it',
    )
  }
})

export function makeConfigSchema(pathCtx: PathContext, options: SchemaOptions = {}) {
  const nodeSsh = z.strictObject({
    user: user.optional(),
    port: port.optional(),
    identityFile: localPath(pathCtx).optional(),
    become: become.optional(),
    proxyJump: proxyJump.optional(),
  })

  const ssh = z.strictObject({
    /** Else ~/.ssh/config's User, else the local user. */
    user: user.optional(),
    /** Else ~/.ssh/config's Port, else 22. */
    port: port.optional(),
    identityFile: localPath(pathCtx).optional(),
    knownHosts: localPath(pathCtx).prefault('~/.ssh/known_hosts'),
    become: become.default('sudo'),
    proxyJump: proxyJump.optional(),
    /** ms */
    connectTimeout: duration().prefault('10s'),
    /** ms */
    keepaliveInterval: duration().prefault('15s'),
    /** ms; the bound of one remote command unless the caller sets its own. */
    commandTimeout: duration().prefault('2m'),
  })

  const nodeInstall = z.strictObject({
    binDir: remoteDir.optional(),
    dataDir: remoteDir.optional(),
    configDir: remoteDir.optional(),
    /** kubeadm: the package repository definition to switch between minors (else found through apt or dnf). */
    repositoryFile: remoteDir.optional(),
  })

  const node = z.strictObject({
    name: nodeName,
    /** Required unless `discover: true` (then the Node's InternalIP). */
    host: host.optional(),
    /** Required unless `discover: true` (then the control-plane label decides). */
    role: z.enum(['server', 'agent']).optional(),
    /** local: this node is the machine the CLI runs on; commands run here, without SSH. */
    connection: z.enum(['ssh', 'local']).default('ssh'),
    ssh: nodeSsh.optional(),
    install: nodeInstall.optional(),
  })

  const install = z.strictObject({
    // Defaults depend on `distribution`: see distributionDefaults, applied below.
    binDir: remoteDir.optional(),
    dataDir: remoteDir.optional(),
    /** Node-level configuration (`/etc/rancher/k3s`, kubeadm's `/etc/kubernetes`). */
    configDir: remoteDir.optional(),
    repositoryFile: remoteDir.optional(),
    releaseUrl: baseUrl.optional(),
    channelUrl: baseUrl.optional(),
    /** cli: download once here, verify, push over SFTP; node: each node downloads and verifies. */
    source: z.enum(['cli', 'node']).default('cli'),
    service: z.enum(['auto', 'systemd', 'openrc']).default('auto'),
    /**
     * A binary a package manager owns (RPM install) is refused: overwriting it breaks the package
     * database. true: overwrite anyway. Unset means false.
     */
    allowPackageOwnedBinary: z.boolean().optional(),
    /**
     * How the nodes get the new version's system images. auto: per node, an images archive in
     * the agent's image dir means archive, a registries.yaml with mirrors means registry, else pull.
     */
    images: z.enum(['auto', 'archive', 'registry', 'pull']).default('auto'),
    /** Image archives pushed at once (each is hundreds of MiB), whatever --concurrency is. */
    uploadConcurrency: z.number().int().min(1).max(64).default(2),
  })

  // kubectl drain's flags in camelCase; defaults differ from kubectl's where noted.
  const drain = z.strictObject({
    // Every k3s node runs DaemonSet pods (svclb, the CNI), so kubectl's `false` would always refuse.
    ignoreDaemonsets: z.boolean().default(true),
    // emptyDir is scratch space by definition.
    deleteEmptydirData: z.boolean().default(true),
    force: z.boolean().default(false),
    /** Seconds; -1 = each pod's own terminationGracePeriodSeconds. */
    gracePeriod: z.number().int().min(-1).default(-1),
    /** ms. kubectl waits forever by default; we bound every wait. */
    timeout: duration().prefault('5m'),
    disableEviction: z.boolean().default(false),
    /** Seconds, as kubectl's flag; 0 = off. */
    skipWaitForDeleteTimeout: z.number().int().min(0).default(0),
    podSelector: z.string().default(''),
  })

  const namespace = z.string().superRefine((value, ctx) => {
    if (value !== '*' && (value.length > 63 || !NAMESPACE_RE.test(value))) {
      problem(ctx, `${JSON.stringify(value)} is not a namespace name`, 'set {path} to a Kubernetes namespace name (lowercase letters, digits and "-")')
    }
  })

  const velero = z.strictObject({
    enabled: z.boolean().default(true),
    namespace: namespace.default('velero'),
    includedNamespaces: z.array(namespace).min(1).default(['kube-system']),
    storageLocation: z.string().min(1).default('default'),
    /** ms; sent to Velero as spec.ttl. */
    ttl: duration().prefault('720h'),
    /** ms; how long to wait for the Backup to complete. */
    timeout: duration().prefault('30m'),
  })

  const backup = z.strictObject({
    velero: velero.prefault({}),
    /** auto: when the servers run embedded etcd (not SQLite). */
    etcdSnapshot: z.enum(['auto', 'always', 'never']).default('auto'),
  })

  const upgrade = z.strictObject({
    agentConcurrency: z.number().int().min(1).default(1),
    drain: drain.prefault({}),
    backup: backup.prefault({}),
    timeouts: z
      .strictObject({
        /** ms; for the API server to answer /readyz after a server restarts. */
        apiReady: duration().prefault('5m'),
        /** ms; for a restarted node to report Ready on the new version. */
        nodeReady: duration().prefault('10m'),
      })
      .prefault({}),
    /** After each node is back, its workloads must be as available as before the run before the next drain. */
    healthGate: z
      .strictObject({
        enabled: z.boolean().default(true),
        /** ms. */
        timeout: duration().prefault('10m'),
      })
      .prefault({}),
  })

  const kubernetes = z.strictObject({
    /** Else --kubeconfig, KUBECONFIG, ~/.kube/config. */
    kubeconfig: localPath(pathCtx).optional(),
    context: z.string().min(1).optional(),
  })

  return z
    .strictObject({
      distribution: z.enum(Object.keys(DISTRIBUTIONS) as [Distribution, ...Distribution[]]).optional(),
      kubernetes: kubernetes.prefault({}),
      ssh: ssh.prefault({}),
      nodes: z.array(node).default([]),
      /** true: the API lists the nodes; file entries only add SSH settings. */
      discover: z.boolean().default(false),
      install: install.prefault({}),
      upgrade: upgrade.prefault({}),
      /** Commands run on this machine around the run and each node: argv lists, or {shell} for sh -c. */
      hooks: z.strictObject({preRun: hookList(), postRun: hookList(), preNode: hookList(), postNode: hookList()}).prefault({}),
      /** Webhooks told how a run goes; a failed notification never changes the outcome. */
      notify: z
        .array(
          z.strictObject({
            url: z.url({protocol: /^https?$/}),
            format: z.enum(NOTIFY_FORMATS).default('json'),
            events: z.array(z.enum(NOTIFY_EVENTS)).min(1).default([...NOTIFY_EVENTS]),
          }),
        )
        .default([]),
    })
    .superRefine(crossFieldChecks, {when: () => true})
    .transform((config) => {
      const distribution: Distribution = config.distribution ?? options.defaultDistribution ?? DEFAULT_DISTRIBUTION
      const defaults = distributionDefaults(distribution)
      return {
        ...config,
        distribution,
        install: {
          ...config.install,
          binDir: config.install.binDir ?? defaults.binDir,
          dataDir: config.install.dataDir ?? defaults.dataDir,
          configDir: config.install.configDir ?? defaults.configDir,
          releaseUrl: config.install.releaseUrl ?? defaults.releaseUrl,
          channelUrl: config.install.channelUrl ?? defaults.channelUrl,
        },
      }
    })
}

/**
 * Checks that span fields. Runs even when fields failed (so every problem is reported at once),
 * hence it trusts nothing about the shape of `config`.
 */
function nameOf(node: Record<string, unknown> | null | undefined): string {
  return node && typeof node.name === 'string' ? ` (${node.name})` : ''
}

function crossFieldChecks(config: unknown, ctx: Ctx): void {
  const c = (config ?? {}) as {discover?: unknown; nodes?: unknown; ssh?: {port?: unknown}}
  const discover = c.discover === true
  // A `nodes` that is not a list already has its own problem; more would only be noise.
  if (c.nodes !== undefined && !Array.isArray(c.nodes)) return
  const nodes = Array.isArray(c.nodes) ? (c.nodes as Array<Record<string, unknown> | null>) : []
  const defaultPort = typeof c.ssh?.port === 'number' ? c.ssh.port : undefined
  const byName = new Map<string, number>()
  const byAddress = new Map<string, number>()

  nodes.forEach((n, i) => {
    if (!n || typeof n !== 'object') return
    const name = typeof n.name === 'string' ? n.name : undefined
    const label = name ? ` (node ${name})` : ''
    if (name !== undefined) {
      const first = byName.get(name)
      if (first === undefined) byName.set(name, i)
      else {
        ctx.addIssue({
          code: 'custom',
          path: ['nodes', i, 'name'],
          message: `${JSON.stringify(name)} is already the name of nodes[${first}]`,
          params: {hint: 'give every node its own name, as `kubectl get nodes` shows them'} satisfies ProblemParams,
        })
      }
    }
    if (!discover) {
      for (const key of ['host', 'role'] as const) {
        if (n[key] === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['nodes', i, key],
            message: `is missing${label}; it is required unless discover is true`,
            params: {
              hint: key === 'host' ? 'add host: <address or ~/.ssh/config alias> to {parent}, or set discover: true' : 'add role: server or role: agent to {parent}, or set discover: true',
            } satisfies ProblemParams,
          })
        }
      }
    }
    if (typeof n.host === 'string') {
      const nodeSsh = (n.ssh ?? {}) as {port?: unknown}
      const port = typeof nodeSsh.port === 'number' ? nodeSsh.port : defaultPort
      // Without a port here, ~/.ssh/config may still tell two aliases apart; a repeated host
      // with the same (or no) port is the same machine either way.
      const key = `${n.host.toLowerCase()}:${port ?? ''}`
      const first = byAddress.get(key)
      if (first === undefined) byAddress.set(key, i)
      else {
        const where = port === undefined ? n.host : `${n.host} port ${port}`
        ctx.addIssue({
          code: 'custom',
          path: ['nodes', i, 'host'],
          message: `${where} is already the address of nodes[${first}]${nameOf(nodes[first])}`,
          params: {hint: 'give every node its own host (or its own ssh.port)'} satisfies ProblemParams,
        })
      }
    }
  })

  if (!discover) {
    if (nodes.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['nodes'],
        message: 'lists no nodes',
        params: {hint: 'list the cluster\'s nodes under nodes: (name, host, role), or set discover: true to take them from the API'} satisfies ProblemParams,
      })
    } else if (!nodes.some((n) => n && typeof n === 'object' && n.role === 'server')) {
      ctx.addIssue({
        code: 'custom',
        path: ['nodes'],
        message: 'no node has role: server',
        params: {hint: 'mark the node(s) running the server (the API, or etcd) with role: server, or set discover: true'} satisfies ProblemParams,
      })
    }
  }
}

export type HomelabConfig = z.output<ReturnType<typeof makeConfigSchema>>
export type NodeEntry = HomelabConfig['nodes'][number]
export type NodeRole = NonNullable<NodeEntry['role']>
export type NodeSshOverrides = NonNullable<NodeEntry['ssh']>
export type NodeInstallOverrides = NonNullable<NodeEntry['install']>
export type SshSettings = HomelabConfig['ssh']
export type KubernetesSettings = HomelabConfig['kubernetes']
export type InstallSettings = HomelabConfig['install']
export type UpgradeSettings = HomelabConfig['upgrade']
export type DrainOptions = UpgradeSettings['drain']
export type BackupOptions = UpgradeSettings['backup']
export type VeleroOptions = BackupOptions['velero']
export type UpgradeTimeouts = UpgradeSettings['timeouts']
export type Become = SshSettings['become']
