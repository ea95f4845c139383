/**
 * The JSON Schema of homelab.yaml, generated from the zod schema (schema.ts) so the two cannot
 * drift: written at build time into the package (`homelab.schema.json`, by
 * commands/_cli/write-schema.ts), printed by `homelab config schema`, and named on the first line
 * of the file `homelab init` writes so editors (yaml-language-server) complete and check it.
 *
 * It describes what the file may contain (the input side): keys, types, enums, ranges, and that
 * unknown keys are errors. Checks that span fields (a node needs host and role unless discover is
 * true, names and addresses unique) and the shape of a host name stay with homelab itself.
 */
import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {z} from '../bundled/zod.js'
import {jsonSchemaHints, makeConfigSchema} from './schema.js'

export const SCHEMA_FILE_NAME = 'homelab.schema.json'

/** The line that makes yaml-language-server (VS Code's YAML extension, Neovim, Helix…) use the schema. */
export function schemaModeline(location: string): string {
  return `# yaml-language-server: $schema=${location}`
}

/** Where the build puts the schema in the installed package. */
export function shippedSchemaPath(packageRoot: string): string {
  return path.join(packageRoot, SCHEMA_FILE_NAME)
}

// What a person reads when the editor shows a key: the README's reference in a line each.
const DESCRIPTIONS: Record<string, string> = {
  '': 'homelab.yaml: the cluster homelab upgrades (see the README, "The cluster file")',
  distribution: 'k3s, rke2 or kubeadm; unset: detected from the kubelet versions (and kubeadm-config)',
  kubernetes: 'where the API server is',
  'kubernetes.kubeconfig': 'kubeconfig file; else --kubeconfig, $KUBECONFIG, ~/.kube/config',
  'kubernetes.context': "kubeconfig context; else the kubeconfig's current-context",
  ssh: 'SSH defaults for every node; ~/.ssh/config is honoured below these',
  'ssh.user': "login user; else ~/.ssh/config's User, else the local user",
  'ssh.port': "else ~/.ssh/config's Port, else 22",
  'ssh.identityFile': 'private key (plus the SSH agent)',
  'ssh.knownHosts': 'known_hosts file host keys are checked against',
  'ssh.become': 'sudo: passwordless sudo -n on the nodes; none: log in as root',
  'ssh.proxyJump': "OpenSSH's ProxyJump syntax: [user@]host[:port], several separated by commas",
  'ssh.connectTimeout': 'bound of TCP connect, handshake and login',
  'ssh.keepaliveInterval': 'SSH keepalive interval',
  'ssh.commandTimeout': 'bound of one remote command',
  discover: 'true: nodes from the API (role from the node-role labels, address from InternalIP); file entries only add SSH settings',
  nodes: "the cluster's nodes",
  'nodes[].name': 'the Kubernetes node name, as kubectl get nodes shows it',
  'nodes[].host': 'address or ~/.ssh/config Host alias; required unless discover is true',
  'nodes[].role': 'server (control plane or etcd) or agent; required unless discover is true',
  'nodes[].connection': 'ssh, or local: the machine homelab runs on (no SSH)',
  'nodes[].ssh': "this node's own SSH settings, over the defaults in ssh",
  'nodes[].install': "this node's own install paths, over the defaults in install",
  install: "where the distribution is installed on the nodes; defaults are the distribution's",
  'install.binDir': "unset: the first of the installer's dirs that holds the binary",
  'install.dataDir': 'the data dir (/var/lib/rancher/k3s, /var/lib/rancher/rke2, /var/lib/kubelet)',
  'install.configDir': "node-level configuration (kubeadm's /etc/kubernetes)",
  'install.repositoryFile': 'kubeadm: the package repository definition; unset: found through apt-config or dnf repolist',
  'install.releaseUrl': 'where release binaries are downloaded from (a mirror works)',
  'install.channelUrl': 'where --to stable|latest|v1.32 is resolved',
  'install.source': 'cli: download once, verify, push over SFTP; node: each node downloads',
  'install.service': 'auto, systemd or openrc (rke2: systemd only)',
  'install.allowPackageOwnedBinary': 'true: replace a binary an RPM or deb package owns',
  'install.images': 'auto, archive, registry or pull: how nodes get the new system images (auto: detected per node)',
  'install.uploadConcurrency': 'image archives pushed to nodes at once',
  upgrade: 'how the upgrade runs',
  'upgrade.agentConcurrency': 'agents upgraded at once',
  'upgrade.drain': "kubectl drain's flags, camelCased",
  'upgrade.drain.gracePeriod': "seconds; -1 = each pod's own",
  'upgrade.drain.skipWaitForDeleteTimeout': "seconds, as kubectl's flag; 0 = off",
  'upgrade.backup.velero': 'the Velero Backup taken before the first change',
  'upgrade.backup.etcdSnapshot': 'auto (when the servers run embedded etcd), always or never',
  'upgrade.timeouts.apiReady': 'for the API server to answer /readyz after a server restarts',
  'upgrade.timeouts.nodeReady': 'for a restarted node to be Ready at the new version',
  'upgrade.healthGate': "after each node: the workloads it ran back to their availability before the run, before the next node",
  'upgrade.healthGate.enabled': 'false: no gate (and no workload check at the end)',
  'upgrade.healthGate.timeout': 'how long a node may take to give its workloads back before the run is undone',
  hooks: 'commands run on this machine around the run and each node (argv lists; {shell: "…"} for sh -c)',
  'hooks.preRun': 'before any change; one failing refuses the run (exit 3)',
  'hooks.postRun': 'after the run, whatever its outcome (HOMELAB_OUTCOME); a failure is a warning',
  'hooks.preNode': 'before each node is touched; one failing fails that node and the run is undone',
  'hooks.postNode': 'after each node is back; one failing fails that node and the run is undone',
  notify: 'webhooks told how a run goes (sent in the background; a failure is only a warning)',
  'notify[].url': 'http(s) URL of the webhook or ntfy topic; it may hold a token: homelab always shows it masked',
  'notify[].format': 'json (the event as JSON), slack, discord or ntfy',
  'notify[].events': 'started, node-done, succeeded, failed, compensated, interrupted (default: all)',
}

type JsonObject = Record<string, unknown>

/** The schema as a JSON value, ready to be written out. */
export function configJsonSchema(): JsonObject {
  // The anchors only change what paths resolve to, never which keys or types are allowed.
  const schema = makeConfigSchema({home: '/', baseDir: '/'})
  const json = z.toJSONSchema(schema, {
    io: 'input',
    target: 'draft-2020-12',
    // Refinements (host names, jump hosts) are checked by homelab; the schema gives their type.
    unrepresentable: 'any',
    override(ctx) {
      const hint = jsonSchemaHints.get(ctx.zodSchema)
      if (hint) Object.assign(ctx.jsonSchema, hint.jsonSchema)
    },
  }) as JsonObject
  describe(json, '')
  return {$schema: json.$schema, title: 'homelab.yaml', ...json}
}

function describe(node: JsonObject, at: string): void {
  const description = DESCRIPTIONS[at]
  // A kind's own words (what a duration looks like) follow what the setting is for.
  if (description) node.description = typeof node.description === 'string' ? `${description}; ${node.description}` : description
  for (const [key, child] of Object.entries((node.properties ?? {}) as Record<string, JsonObject>)) {
    describe(child, at ? `${at}.${key}` : key)
    allowNull(child)
  }
  if (node.items && typeof node.items === 'object') describe(node.items as JsonObject, `${at}[]`)
}

/**
 * `key:` with nothing after it (a section whose lines are commented out) is YAML null, which
 * homelab reads as "not set": the schema must not flag it either.
 */
function allowNull(node: JsonObject): void {
  if (Array.isArray(node.enum) && !node.enum.includes(null)) node.enum.push(null)
  if (typeof node.type === 'string') node.type = [node.type, 'null']
  else if (Array.isArray(node.anyOf)) node.anyOf.push({type: 'null'})
}

/** The schema's text: the file the build wrote when there is one, else generated now (running from the sources). */
export async function configJsonSchemaText(packageRoot: string): Promise<string> {
  const shipped = await readFile(shippedSchemaPath(packageRoot), 'utf8').catch(() => undefined)
  return shipped ?? formatSchema(configJsonSchema())
}

export function formatSchema(schema: JsonObject): string {
  return `${JSON.stringify(schema, null, 2)}\n`
}
