import {restartCommand, type UpgradeData, type UpgradeInput} from '../../sagas/binary-upgrade.js'
import type {KubeadmUpgradeData, KubeadmUpgradeInput} from '../../sagas/kubeadm-upgrade.js'
import {DEFAULT_DISTRIBUTION, binaryDistributionOf, packageDistributionOf} from '../distributions/index.js'
import type {RunJournal} from '../saga/types.js'
import type {PlannedNode} from './types.js'

/** Each failed or pending compensation, newest first, with the commands that do it by hand. */
function compensationSteps(journal: RunJournal): string[] {
  return [...journal.compensations].reverse().filter((c) => c.state !== 'compensated').flatMap((c) => [
    `# ${c.description}${c.error ? ` (failed: ${c.error.message})` : ''}`,
    ...(c.manual ?? [`homelab k8s rollback ${journal.id}`]),
  ])
}

/**
 * The commands a person runs when a compensation could not finish: each failed or pending
 * compensation's own steps, then the distribution's documented etcd restore from the snapshot
 * we took. Each server's stop/start uses the service manager found on it.
 */
export function manualRecoverySteps(journal: RunJournal): string[] {
  const steps = compensationSteps(journal)
  const data = journal.data as UpgradeData
  const input = journal.input as UpgradeInput
  const snapshot = data.etcdSnapshot
  if (steps.length === 0 || !snapshot) return steps

  const distribution = binaryDistributionOf(input.distribution ?? DEFAULT_DISTRIBUTION)
  const service = distribution.services.server
  const servers = input.plan.servers
  const snapshotServer = servers.find((s) => s.name === snapshot.node)
  const dataDir = snapshotServer?.dataDir ?? distribution.dataDir
  const others = servers.filter((s) => s.name !== snapshot.node)
  const control = (server: PlannedNode | undefined, verb: 'stop' | 'start') =>
    `sudo ${restartCommand(server?.serviceManager ?? 'systemd', service).replace(/\brestart\b/, verb)}`
  const restore = [distribution.binary, ...distribution.etcd.restoreArgs(`${distribution.etcd.snapshotDir(dataDir)}/${snapshot.name}`)].join(' ')
  let n = 0
  const step = (text: string) => `# ${++n}. ${text}`
  steps.push(
    `# last resort: restore etcd from the snapshot ${snapshot.name} taken on ${snapshot.node}`,
    ...(servers.length > 0 ? servers.map((s) => step(`on ${s.name}: ${control(s, 'stop')}`)) : [step(`on every server: ${control(undefined, 'stop')}`)]),
    step(`on ${snapshot.node}: sudo ${restore}`),
    step(`on ${snapshot.node}: ${control(snapshotServer, 'start')}`),
    // Each server's own data dir: a node configured apart must not be told to delete a path it does not use.
    ...others.map((s) => step(`on ${s.name}: sudo rm -rf ${distribution.etcd.dbDir(s.dataDir)} && ${control(s, 'start')}`)),
  )
  return steps
}

/**
 * kubeadm: each compensation's own steps (a control plane that stays upgraded says how kubeadm's
 * backups take it back), then, as a last resort, etcd from the snapshot taken before the run.
 */
export function kubeadmManualRecoverySteps(journal: RunJournal): string[] {
  const steps = compensationSteps(journal)
  const data = journal.data as KubeadmUpgradeData
  const snapshot = data.etcdSnapshot
  if (steps.length === 0 || !snapshot) return steps
  const input = journal.input as KubeadmUpgradeInput
  const distribution = packageDistributionOf(input.distribution)
  const server = input.plan.servers.find((s) => s.name === snapshot.node)
  const manifests = distribution.manifestsDir(server?.configDir ?? distribution.configDir)
  const restored = '/var/lib/etcd-from-snapshot'
  let n = 0
  const step = (text: string) => `# ${++n}. ${text}`
  steps.push(
    `# last resort: restore etcd from the snapshot ${snapshot.name} taken on ${snapshot.node} (kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd/#restoring-an-etcd-cluster)`,
    step(`on every control plane: move kube-apiserver.yaml and etcd.yaml out of ${manifests} (the kubelet stops them)`),
    step(`on ${snapshot.node}: sudo etcdutl snapshot restore ${snapshot.name} --data-dir ${restored}`),
    step(`on ${snapshot.node}: point the etcd-data hostPath of etcd.yaml at ${restored} and move both manifests back`),
    step('with several control planes: restore each member from the same snapshot as the etcd docs show, then start them'),
  )
  return steps
}
