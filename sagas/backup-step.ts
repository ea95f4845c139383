/**
 * The first step of every upgrade saga: a Velero backup, named in the journal before it exists
 * (a resumed run follows it instead of taking another) with its restore registered as the undo
 * that runs last, then the etcd snapshot the distribution takes its own way.
 */
import type {KubeClients} from '../src/kube/client.js'
import {nothingToDo, skip} from '../src/saga/engine.js'
import type {StepContext, StepDefinition} from '../src/saga/types.js'
import type {UpgradePlan} from '../src/upgrade/types.js'
import {createBackup, type VeleroSettings} from '../src/velero.js'

/** A Kubernetes object name for the backup: `pre-upgrade-v1-32-0-k3s1-20261122t031500`. */
export function backupName(target: string, at: Date): string {
  const version = target.toLowerCase().replace(/[^a-z0-9]+/g, '-')
  const stamp = at.toISOString().replace(/[-:]/g, '').slice(0, 15).toLowerCase()
  return `pre-upgrade-${version}-${stamp}`
}

interface BackupInput {
  target: string
  plan: UpgradePlan
  skipBackup: boolean
  velero: VeleroSettings
}
interface BackupData {
  veleroBackup?: string
  etcdSnapshot?: {node: string; name: string}
}
interface BackupCompensations {
  restoreBackup: {backupName: string}
}

export function backupStep<I extends BackupInput, D extends BackupData, C extends BackupCompensations>(options: {
  kube: KubeClients
  now: () => Date
  /** Takes the snapshot on `node`; returns the name (or path) a person restores it by. */
  etcdSnapshot: (ctx: StepContext<I, D, C>, node: string) => Promise<string>
  /** Why there is nothing to back up when Velero is off and no node has an etcd to snapshot. */
  nothingReason: string
}): StepDefinition<I, D, C> {
  return {
    name: 'backup',
    title: 'Back up (Velero, etcd snapshot)',
    async run(ctx) {
      const {plan} = ctx.input
      if (plan.servers.length + plan.agents.length === 0) return nothingToDo(`every node is already at ${ctx.input.target}`)
      if (ctx.input.skipBackup) return skip('--skip-backup')
      if (plan.backup.velero) {
        const name = ctx.data.veleroBackup ?? backupName(ctx.input.target, options.now())
        await ctx.updateData((data) => {
          data.veleroBackup = name
        })
        ctx.log('info', `Velero backup ${name}`)
        await createBackup(options.kube, ctx.input.velero, name, ctx.signal)
        await ctx.registerCompensation({
          id: 'restore-backup',
          handler: 'restoreBackup',
          params: {backupName: name},
          description: `restore Velero backup ${name}`,
          manual: [`velero restore create --from-backup ${name} --existing-resource-policy update`],
        } as Parameters<typeof ctx.registerCompensation>[0])
      }
      const node = plan.backup.etcdSnapshotNode
      if (node && !ctx.data.etcdSnapshot) {
        const name = await options.etcdSnapshot(ctx, node)
        await ctx.updateData((data) => {
          data.etcdSnapshot = {node, name}
        })
        ctx.log('info', `etcd snapshot ${name} on ${node}`)
      }
      if (!plan.backup.velero && !node) return skip(options.nothingReason)
    },
  }
}
