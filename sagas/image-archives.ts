/**
 * The images archives of air-gapped nodes (archive mode), as parts of the binary saga: staged
 * beside the binary in the background, put in place just before the swap, removed in the last
 * step once the run is verified, and put back by the compensation. What happens on the node is
 * in src/airgap/archive-ops.ts; this module decides when.
 */
import {archiveState, discardStagedArchives, installStagedArchive, placeArchives, previousArchivePath, removePreviousArchives, restoreArchives, stageArchive, stagedArchivePath} from '../src/airgap/archive-ops.js'
import type {InventoryNode} from '../src/inventory.js'
import {skip} from '../src/saga/engine.js'
import type {ActionContext, CompensationContext, StepContext, StepDefinition} from '../src/saga/types.js'
import {SessionLimit} from '../src/transport/ssh-session-limit.js'
import type {Transport} from '../src/transport/types.js'
import {mib} from '../src/units.js'
import type {BinaryUpgradeDeps, PlannedNode} from '../src/upgrade/types.js'
import {parseVersion} from '../src/versions/release-version.js'
import {copyRetrying} from './binary-staging.js'
import type {UpgradeCompensations, UpgradeData, UpgradeInput} from './binary-upgrade.js'
import {sshDestination} from './ssh-destination.js'

type StepCtx = StepContext<UpgradeInput, UpgradeData, UpgradeCompensations>
type Ctx = ActionContext<UpgradeInput, UpgradeData, UpgradeCompensations>
type Archives = {dir: string; archives: NonNullable<NonNullable<PlannedNode['images']>['archives']>}

/** The node's archives to replace, when it is in archive mode. */
export function archivesOf(node: PlannedNode): Archives | undefined {
  const {images} = node
  return images?.mode === 'archive' && images.dir && images.archives ? {dir: images.dir, archives: images.archives} : undefined
}

export class ImageArchives {
  // Archives are hundreds of MiB: at most install.uploadConcurrency of them cross the network at once.
  private readonly uploadLimits = new Map<string, SessionLimit>()

  constructor(
    private readonly deps: BinaryUpgradeDeps,
    private readonly inventoryNode: (name: string) => InventoryNode,
  ) {}

  /**
   * Pushes each of the node's new archives unless the live or staged file is it already; returns
   * the files staged (to be put in place). `onStaged` is told before the first push, so a failed
   * run knows what to remove.
   */
  async stage(ctx: StepCtx, node: PlannedNode, signal: AbortSignal, onStaged: () => void): Promise<string[]> {
    const found = archivesOf(node)
    if (!found) return []
    let limit = this.uploadLimits.get(ctx.runId)
    if (!limit) this.uploadLimits.set(ctx.runId, (limit = new SessionLimit(ctx.input.install.uploadConcurrency ?? 2)))
    const connect = () => this.deps.connect(this.inventoryNode(node.name))
    const staged: string[] = []
    for (const archive of found.archives) {
      const state = await archiveState(await connect(), found.dir, archive, signal)
      if (state.liveSha === archive.sha256) continue
      staged.push(archive.file)
      onStaged()
      if (state.stagedSha === archive.sha256) continue
      const local = await this.deps.release.artifact(parseVersion(ctx.input.target), node.arch, archive.file, signal)
      await limit.use(async () => {
        ctx.log('info', `copying ${archive.file} (${mib(archive.size)}) to the node`, node.name)
        let reported = 0
        const onProgress = (sent: number) => {
          // A line per quarter: enough to see it move, few enough for the journal.
          const quarter = Math.floor((sent / archive.size) * 4)
          if (quarter > reported && quarter < 4) {
            reported = quarter
            ctx.log('info', `${archive.file}: ${mib(sent)} of ${mib(archive.size)} sent`, node.name)
          }
        }
        const log = (message: string) => ctx.log('warn', message, node.name)
        await copyRetrying(log, signal, async () => stageArchive(await connect(), {dir: found.dir, file: archive.file, sha256: archive.sha256, localPath: local.path, onProgress, signal}))
        ctx.log('info', `${archive.file} staged and verified`, node.name)
      }, signal)
    }
    return staged
  }

  /** Before the binary swap: the undo on record, then the staged archives renamed into place. */
  async place(ctx: Ctx, node: PlannedNode, transport: Transport, staged: readonly string[] | undefined): Promise<void> {
    const found = archivesOf(node)
    if (!found) return
    await ctx.registerCompensation(restoreImagesSpec(node, found))
    if (!staged?.length) return
    await placeArchives(transport, found.dir, staged)
    ctx.log('info', `images archives in place (${staged.join(', ')}; the previous kept until the run is verified)`)
  }

  /** Every node action is over. */
  forget(runId: string): void {
    this.uploadLimits.delete(runId)
  }

  /**
   * The last step. Only now is every node Ready at the target with every kube-system pod running
   * (the verification waited for both): until then the undo wants the old archives where they are.
   */
  retireStep(): StepDefinition<UpgradeInput, UpgradeData, UpgradeCompensations> {
    return {
      name: 'retire-archives',
      title: 'Remove the previous images archives',
      run: async (ctx) => {
        const nodes = [...ctx.input.plan.servers, ...ctx.input.plan.agents].filter((node) => archivesOf(node))
        if (nodes.length === 0) return skip('no images archive was replaced')
        await ctx.actions(nodes.map((node) => node.name), {concurrency: ctx.input.concurrency}, async (action) => {
          const node = nodes.find((n) => n.name === action.node) as PlannedNode
          const found = archivesOf(node) as Archives
          const files = found.archives.map((a) => a.file)
          try {
            await removePreviousArchives(await this.deps.connect(this.inventoryNode(action.node)), found.dir, files)
            action.log('info', 'previous images archives removed')
          } catch (error) {
            // The upgrade is verified; a leftover old archive only takes disk (it is not imported),
            // so it is a warning with the command, never a reason to undo the run.
            if (ctx.signal.aborted) throw error
            action.log('warn', `could not remove the previous images archives (${(error as Error).message}); remove them with: ssh ${sshDestination(node)} sudo rm -f ${files.map((f) => previousArchivePath(found.dir, f)).join(' ')}`)
          }
        })
      },
    }
  }

  /** The compensation: the old archives back, from the kept files, or from the release where a run stopped while retiring them. */
  async restore(params: UpgradeCompensations['restoreImages'], ctx: CompensationContext<UpgradeInput, UpgradeData>): Promise<void> {
    const transport = await this.deps.connect(this.inventoryNode(params.node))
    const gone = await restoreArchives(transport, params.dir, params.archives)
    const version = parseVersion(params.previousVersion)
    for (const file of gone) {
      const old = await this.deps.release.artifact(version, params.arch, file, ctx.signal)
      await stageArchive(transport, {dir: params.dir, file, sha256: old.sha256, localPath: old.path, signal: ctx.signal})
      await installStagedArchive(transport, params.dir, file)
      ctx.log('info', `${file} of ${params.previousVersion} brought back from the release`)
    }
    ctx.log('info', `images archives of ${params.previousVersion} back in ${params.dir}`)
  }

  /** Removes staged archives no node put in place; an unreachable node is a warning with the command. */
  async discard(ctx: CompensationContext<UpgradeInput, UpgradeData>, nodes: readonly PlannedNode[]): Promise<void> {
    await Promise.all(nodes.map(async (node) => {
      const found = archivesOf(node)
      if (!found) return
      const files = found.archives.map((a) => a.file)
      try {
        await discardStagedArchives(await this.deps.connect(this.inventoryNode(node.name)), found.dir, files)
      } catch (error) {
        ctx.log('warn', `${node.name}: could not remove the staged images archives in ${found.dir} (${(error as Error).message}); remove them with: ssh ${sshDestination(node)} sudo rm -f ${files.map((f) => stagedArchivePath(found.dir, f)).join(' ')}`)
      }
    }))
  }
}

/** The undo of putting the new images archives in place. */
function restoreImagesSpec(node: PlannedNode, found: Archives) {
  const archives = found.archives.map((a) => ({file: a.file, hadPrevious: a.hadPrevious, sha256: a.sha256}))
  return {
    id: `restore-images:${node.name}`,
    handler: 'restoreImages' as const,
    params: {node: node.name, dir: found.dir, arch: node.arch, previousVersion: node.fromVersion, archives},
    description: `put the images archives of ${node.fromVersion} back on ${node.name}`,
    manual: archives.map((a) => `ssh ${sshDestination(node)} sudo mv ${previousArchivePath(found.dir, a.file)} ${found.dir}/${a.file}`),
  }
}
