import {restartCommand, type UpgradeData, type UpgradeInput} from '../../sagas/binary-upgrade.js'
import {DEFAULT_DISTRIBUTION, binaryDistributionOf} from '../distributions/index.js'
import type {RunJournal} from '../saga/types.js'
import type {PlannedNode} from './types.js'

/**
 * The commands a person runs when a compensation could not finish: each failed or pending
 * compensation's own steps, then the distribution's documented etcd restore from the snapshot
 * we took. Each server's stop/start uses the service manager found on it.
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
