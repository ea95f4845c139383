import type {RunJournal} from '../saga/types.js'
import type {UpgradeData, UpgradeInput} from '../../sagas/k3s-upgrade.js'

/**
 * The commands a person runs when a compensation could not finish: each failed or pending
 * compensation's own steps, then the documented k3s etcd restore from the snapshot we took.
 */
export function manualRecoverySteps(journal: RunJournal): string[] {
  const steps: string[] = []
  for (const compensation of [...journal.compensations].reverse()) {
    if (compensation.state === 'compensated') continue
    steps.push(`# ${compensation.description}${compensation.error ? ` (failed: ${compensation.error.message})` : ''}`)
    steps.push(...(compensation.manual ?? [`homelab k8s rollback ${journal.id}`]))
  }
  const data = journal.data as UpgradeData
  const input = journal.input as UpgradeInput
  if (steps.length > 0 && data.etcdSnapshot) {
    const snapshotServer = input.plan.servers.find((s) => s.name === data.etcdSnapshot?.node)
    const dataDir = snapshotServer?.dataDir ?? '/var/lib/rancher/k3s'
    const others = input.plan.servers.filter((s) => s.name !== data.etcdSnapshot?.node)
    steps.push(
      `# last resort: restore etcd from the snapshot ${data.etcdSnapshot.name} taken on ${data.etcdSnapshot.node}`,
      '# 1. on every server: sudo systemctl stop k3s',
      `# 2. on ${data.etcdSnapshot.node}: sudo k3s server --cluster-reset --cluster-reset-restore-path=${dataDir}/server/db/snapshots/${data.etcdSnapshot.name}`,
      `# 3. on ${data.etcdSnapshot.node}: sudo systemctl start k3s`,
      // Each server's own data dir: a node configured apart must not be told to delete a path it does not use.
      ...(others.length > 0 ? others.map((s) => `# 4. on ${s.name}: sudo rm -rf ${s.dataDir}/server/db/ && sudo systemctl start k3s`) : ['# 4. (no other servers)']),
    )
  }
  return steps
}
