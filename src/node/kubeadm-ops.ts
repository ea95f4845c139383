/**
 * What kubeadm's upgrade guide runs on a node, besides packages: `kubeadm upgrade plan|apply|node`,
 * the kubelet restart, a copy of the kubelet's config (which `upgrade node` rewrites), and an
 * etcd snapshot with kubeadm's etcd certificates. Arguments travel as argv or positional $N.
 */
import type {PackageDistribution} from '../distributions/index.js'
import {CommandError} from '../errors.js'
import type {Transport} from '../transport/types.js'
import {script} from './node-ops.js'

interface Options {
  signal?: AbortSignal
}

const KUBEADM_TIMEOUT_MS = 15 * 60_000

function lastLines(text: string, count = 3): string {
  return text.trim().split('\n').filter((l) => l.trim()).slice(-count).join(' / ').slice(0, 400)
}

async function kubeadm(transport: Transport, distribution: PackageDistribution, argv: string[], what: string, hint: string, options: Options): Promise<string> {
  const result = await transport.exec([distribution.upgrader, ...argv], {privileged: true, signal: options.signal, timeoutMs: KUBEADM_TIMEOUT_MS})
  if (result.exitCode !== 0) {
    throw new CommandError(`${transport.node}: ${what} failed: ${lastLines(result.stderr || result.stdout)}`, result.exitCode, result.stderr, {hint})
  }
  return result.stdout
}

/** `kubeadm upgrade plan <v>` with the new kubeadm: refuses unless it offers `kubeadm upgrade apply <v>`. */
export async function kubeadmUpgradePlan(transport: Transport, distribution: PackageDistribution, version: string, configDir: string, options: Options = {}): Promise<void> {
  const out = await kubeadm(transport, distribution, ['upgrade', 'plan', version, '--kubeconfig', distribution.adminConf(configDir)], `${distribution.upgrader} upgrade plan ${version}`,
    'run it by hand on this node to read what kubeadm objects to; nothing in the cluster was changed by it', options)
  if (!out.includes(`upgrade apply ${version}`)) {
    throw new CommandError(`${transport.node}: ${distribution.upgrader} upgrade plan does not offer ${version}`, 0, out, {hint: `run ${distribution.upgrader} upgrade plan on ${transport.node} to see which versions it offers`})
  }
}

/** `kubeadm upgrade apply <v> --yes`: the first control plane, and with it the cluster's configuration. */
export async function kubeadmUpgradeApply(transport: Transport, distribution: PackageDistribution, version: string, configDir: string, options: Options = {}): Promise<void> {
  await kubeadm(transport, distribution, ['upgrade', 'apply', version, '--yes', '--kubeconfig', distribution.adminConf(configDir)], `${distribution.upgrader} upgrade apply ${version}`,
    `kubeadm rolls its own static pod changes back on failure; its backups are in ${distribution.backupDir(configDir)} on ${transport.node}`, options)
}

/** `kubeadm upgrade node`: another control plane's static pods, and on every node the kubelet's config. */
export async function kubeadmUpgradeNode(transport: Transport, distribution: PackageDistribution, controlPlane: boolean, configDir: string, options: Options = {}): Promise<void> {
  // A worker has no admin.conf: kubeadm reads the kubelet's own kubeconfig there.
  const kubeconfig = controlPlane ? distribution.adminConf(configDir) : `${configDir}/kubelet.conf`
  await kubeadm(transport, distribution, ['upgrade', 'node', '--kubeconfig', kubeconfig], `${distribution.upgrader} upgrade node`,
    `kubeadm rolls its own changes back on failure; see its output on ${transport.node} (${distribution.upgrader} upgrade node)`, options)
}

/** `systemctl daemon-reload` (the package may have changed the unit) and `systemctl restart kubelet`. */
export async function restartKubelet(transport: Transport, distribution: PackageDistribution, options: Options = {}): Promise<void> {
  await transport.run(['systemctl', 'daemon-reload'], {privileged: true, signal: options.signal, timeoutMs: 120_000})
  await transport.run(['systemctl', 'restart', distribution.kubeletService], {privileged: true, signal: options.signal, timeoutMs: 120_000})
}

/** The kubelet's config file, and where this run keeps its copy (beside kubeadm's own backups). */
export function kubeletConfigPaths(distribution: PackageDistribution, kubeletDir: string, configDir: string, runId: string): {live: string; copy: string} {
  return {live: `${kubeletDir}/config.yaml`, copy: `${distribution.backupDir(configDir)}/homelab-kubelet-config-${runId}.yaml`}
}

/** Copies the kubelet's config once (a resumed run keeps the first copy, the one from before the run). */
export async function saveKubeletConfig(transport: Transport, paths: {live: string; copy: string}, options: Options = {}): Promise<void> {
  await script(transport, '[ -f "$2" ] || [ ! -f "$1" ] || { mkdir -p "$(dirname "$2")" && cp -p "$1" "$2.tmp" && mv -f "$2.tmp" "$2"; }', [paths.live, paths.copy], {privileged: true, signal: options.signal})
}

/** Puts the copied kubelet config back; nothing to do when no copy was taken. */
export async function restoreKubeletConfig(transport: Transport, paths: {live: string; copy: string}, options: Options = {}): Promise<void> {
  await script(transport, '[ ! -f "$2" ] || { cp -p "$2" "$1.tmp" && mv -f "$1.tmp" "$1"; }', [paths.live, paths.copy], {privileged: true, signal: options.signal})
}

// On the host when etcdctl is installed there; else inside the etcd static pod through crictl,
// writing into etcd's data dir, which kubeadm mounts at the same path on the host, then moved out.
const ETCD_SNAPSHOT = `mkdir -p "$(dirname "$1")" || exit 1
if command -v etcdctl >/dev/null 2>&1; then
  etcdctl snapshot save "$1" --endpoints="$2" --cacert="$3" --cert="$4" --key="$5" || exit 1
  echo host; exit 0
fi
command -v crictl >/dev/null 2>&1 || { echo "neither etcdctl nor crictl is installed on this node" >&2; exit 127; }
id=$(crictl ps --name '^etcd$' --state running -q | head -n 1)
[ -n "$id" ] || { echo "no running etcd container (crictl ps --name etcd)" >&2; exit 1; }
d=$(sed -n 's/.*--data-dir=\\([^"[:space:]]*\\).*/\\1/p' "$6" | head -n 1)
[ -n "$d" ] || d=/var/lib/etcd
n=$(basename "$1")
crictl exec "$id" etcdctl snapshot save "$d/$n" --endpoints="$2" --cacert="$3" --cert="$4" --key="$5" || exit 1
mv -f "$d/$n" "$1" && echo pod`

/**
 * `etcdctl snapshot save` against the node's stacked etcd with kubeadm's etcd certificates, into
 * kubeadm's backup dir: with the host's etcdctl, or the one in the etcd image (crictl exec).
 * Returns the snapshot's path on the node and where etcdctl ran.
 */
export async function saveKubeadmEtcdSnapshot(transport: Transport, distribution: PackageDistribution, options: Options & {configDir: string; name: string}): Promise<{file: string; via: 'host' | 'pod'}> {
  const certs = distribution.etcd.certs(options.configDir)
  const file = `${distribution.backupDir(options.configDir)}/${options.name}.db`
  const result = await transport.exec(
    ['sh', '-c', ETCD_SNAPSHOT, 'homelab', file, distribution.etcd.endpoint, certs.cacert, certs.cert, certs.key, distribution.etcd.manifest(options.configDir)],
    {privileged: true, signal: options.signal, timeoutMs: 300_000},
  )
  if (result.exitCode !== 0) {
    throw new CommandError(`${transport.node}: etcdctl snapshot save failed: ${lastLines(result.stderr)}`, result.exitCode, result.stderr, {
      hint: 'check the etcd static pod on the first control plane (crictl ps --name etcd), or set upgrade.backup.etcdSnapshot: never',
    })
  }
  return {file, via: result.stdout.trim().split('\n').at(-1) === 'pod' ? 'pod' : 'host'}
}
