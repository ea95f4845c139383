import type {Arch} from '../distributions/index.js'
import {isHomelabError, PreflightError} from '../errors.js'
import type {Inventory, InventoryNode} from '../inventory.js'
import {planDrainsFor, type DrainPlan} from '../kube/drain.js'
import {parseImageList} from '../airgap/image-list.js'
import {decideImages, type NodeImagesFacts} from '../airgap/node-images.js'
import {checkRegistryImages, MissingImagesError, registryCheckError} from '../airgap/registry-check.js'
import {script} from '../node/node-ops.js'
import {probeBinaryNode} from '../node/binary-probe.js'
import {settleWithConcurrency} from '../saga/concurrency.js'
import {checkStorageLocation} from '../velero.js'
import {classifyUpgrade} from '../versions/skew.js'
import {compareVersions, type ReleaseVersion} from '../versions/release-version.js'
import {drainSettings, veleroSettings} from './settings.js'
import type {BinaryUpgradeDeps, DrainReport, PlannedImages, PlannedNode, PlannedNodeBase, UpgradeDeps, UpgradePlan} from './types.js'

export interface PreflightRequest {
  target: ReleaseVersion
  /** --nodes: only these (by name). */
  only?: readonly string[]
  skipBackup: boolean
  signal?: AbortSignal
  /** Progress for the person watching ("checking agent-1 over SSH"). */
  onProgress?: (message: string) => void
}

/** Nodes inspected over SSH at once. */
export const SSH_FANOUT = 16

/**
 * Every check before the first change, read-only: the cluster and each node are asked, binaries
 * are downloaded into the local cache and verified. All problems are collected and reported
 * together, so one run tells the user everything to fix. Throws PreflightError (exit 3).
 */
export async function preflight(deps: BinaryUpgradeDeps, request: PreflightRequest): Promise<UpgradePlan<PlannedNode>> {
  const {inventory, config, kube, distribution} = deps
  const {target, signal} = request
  const problems: string[] = []
  const warnings = [...inventory.warnings]
  const fix: string[] = []

  const selected = request.only ? new Set(request.only) : undefined
  clusterProblems(inventory, request.only, problems, fix)

  const servers = inventory.nodes.filter((node) => node.role === 'server')
  if (servers.length > 1 && servers.length % 2 === 0) {
    warnings.push(`${servers.length} servers: an even number of etcd members tolerates no more failures than ${servers.length - 1}`)
  }

  // The release for each architecture the API reports is fetched while the nodes are asked.
  const release = releaseFetcher(deps, target, request)
  for (const node of inventory.nodes) {
    const arch = node.cluster?.architecture as Arch | undefined
    if (arch && (!selected || selected.has(node.name)) && distribution.binaryArtifacts[arch]) release.start(arch)
  }

  // Each node over SSH, a bounded number at once; every node is heard from.
  const facts = new Map<string, NodeFacts>()
  const inspected = await settleWithConcurrency(inventory.nodes, SSH_FANOUT, (node) => {
    request.onProgress?.(`checking ${node.name} over SSH`)
    return inspectNode(deps, node, signal)
  })
  inspected.forEach((outcome, index) => {
    const node = inventory.nodes[index]
    if (outcome.status === 'fulfilled') facts.set(node.name, outcome.value)
    else problems.push(`node ${node.name}: ${isHomelabError(outcome.reason) ? outcome.reason.oneLine() : (outcome.reason as Error).message}`)
  })

  const skippedComponents = judgeSkippedManifests(servers, facts, distribution.manifestsDir(config.install.dataDir), problems, fix)

  const skipped: UpgradePlan['skipped'] = []
  const toUpgrade: Array<Omit<PlannedNode, 'newSha256'>> = []
  for (const node of inventory.nodes) {
    const found = facts.get(node.name)
    if (!found) continue
    const {skipManifests: _, imagesFacts: _images, freeTmpKb: _tmp, ...fact} = found
    if (selected && !selected.has(node.name)) {
      skipped.push({node: node.name, reason: 'not selected by --nodes'})
      continue
    }
    const kind = classifyUpgrade(fact.fromVersion, target)
    if (kind === 'downgrade') {
      problems.push(`node ${node.name} runs ${fact.fromVersion}; ${target.format()} would be a downgrade`)
      fix.push(`pick a target of at least ${fact.fromVersion}; going back means restoring a backup`)
    } else if (kind === 'skip') {
      problems.push(`node ${node.name} runs ${fact.fromVersion}; ${target.format()} skips a minor version`)
      fix.push('upgrade one minor at a time (homelab plans the hops unless --no-hops is given)')
    } else if (kind === 'same' && compareVersions(fact.installedVersion, target) === 0) {
      skipped.push({node: node.name, reason: `already at ${target.format()}`})
    } else {
      toUpgrade.push(fact)
    }
  }

  // Kubelets must never be newer than the API server: agents may only go where every server is (or goes).
  const serverTargets = servers.map((server) => (toUpgrade.some((n) => n.name === server.name) ? target.format() : facts.get(server.name)?.fromVersion))
  for (const agent of toUpgrade.filter((node) => node.role === 'agent')) {
    const behind = serverTargets.find((version) => version && compareVersions(version, target) < 0)
    if (behind) {
      problems.push(`agent ${agent.name} would run ${target.format()} while a server stays at ${behind}`)
      fix.push('upgrade the servers too (include them in --nodes)')
      break
    }
  }

  // Backups.
  const wantVelero = await checkVelero(deps, request.skipBackup, problems)
  const etcdServers = distribution.etcd.alwaysEmbedded ? servers : servers.filter((server) => server.cluster?.labels[distribution.labels.etcd] === 'true')
  const etcdMode = config.upgrade.backup.etcdSnapshot
  let etcdSnapshotNode: string | undefined
  if (!request.skipBackup && etcdMode !== 'never') {
    if (etcdServers.length > 0) etcdSnapshotNode = etcdServers[0].name
    else if (etcdMode === 'always') {
      problems.push('upgrade.backup.etcdSnapshot is always, but no server runs embedded etcd')
      fix.push('set upgrade.backup.etcdSnapshot: auto for clusters on SQLite or an external datastore')
    }
  }

  // Drains, reported per agent.
  const drain = await planDrains(deps, toUpgrade.filter((node) => node.role === 'agent'), problems, fix)

  // Binaries: one verified download per architecture, before any node changes.
  const shaByArch = new Map<Arch, string>()
  for (const arch of new Set(toUpgrade.map((node) => node.arch))) {
    try {
      shaByArch.set(arch, await release.start(arch))
    } catch (error) {
      problems.push(isHomelabError(error) ? error.oneLine() : (error as Error).message)
    }
  }

  // Images archives: each verified download once, before any node changes; then each node's disk.
  const images = await planImages(deps, target, toUpgrade, facts, request, {problems, fix, warnings})

  refuseIfProblems(target, problems, fix)

  const planned = toUpgrade.map((node) => ({...node, newSha256: shaByArch.get(node.arch) as string, ...(images.has(node.name) ? {images: images.get(node.name)} : {})}))
  return planOf(target, planned, {skipped, backup: {velero: wantVelero, etcdSnapshotNode}, skippedComponents, drain, warnings})
}

/**
 * The verified release binary's sha256 per architecture (install.source cli: downloaded into the
 * cache; node: the checksum file only), each fetched once, from the first time it is asked for.
 */
function releaseFetcher(deps: BinaryUpgradeDeps, target: ReleaseVersion, request: PreflightRequest): {start(arch: Arch): Promise<string>} {
  const {config, distribution} = deps
  const started = new Map<Arch, Promise<string>>()
  return {
    start(arch) {
      let fetch = started.get(arch)
      if (!fetch) {
        request.onProgress?.(`fetching and verifying ${distribution.name} ${target.format()} for ${arch}`)
        fetch = config.install.source === 'cli' ? deps.release.binary(target, arch, request.signal).then((b) => b.sha256) : deps.release.expectedSha256(target, arch, request.signal)
        // Awaited only for the architectures a node to upgrade has; a failure elsewhere is nobody's problem.
        fetch.catch(() => {})
        started.set(arch, fetch)
      }
      return fetch
    },
  }
}

const BINARY_HEADROOM_KB = 256 * 1024
/** Left free on the filesystem of the image dir once the new archives are in (containerd unpacks beside it). */
const IMAGES_HEADROOM_KB = 64 * 1024

type NodeFacts = Omit<PlannedNode, 'newSha256' | 'images'> & {skipManifests?: string[]; imagesFacts?: NonNullable<Awaited<ReturnType<typeof probeBinaryNode>>['images']>; freeTmpKb: number}

/**
 * Each node's images plan. Archive mode: the target's archives (named as the node holds them)
 * are downloaded into the CLI's cache and verified, and the node must have room for them beside
 * the old ones (kept until the run is verified) and in /tmp for the upload.
 */
async function planImages(
  deps: BinaryUpgradeDeps,
  target: ReleaseVersion,
  nodes: ReadonlyArray<Omit<PlannedNode, 'newSha256'>>,
  facts: ReadonlyMap<string, NodeFacts>,
  request: PreflightRequest,
  out: {problems: string[]; fix: string[]; warnings: string[]},
): Promise<Map<string, PlannedImages>> {
  const {problems, fix} = out
  const {distribution, config} = deps
  const plans = new Map<string, PlannedImages>()
  const decided = nodes.flatMap((node) => {
    const found = facts.get(node.name)?.imagesFacts
    if (!found) return []
    try {
      return [{node, found, decision: decideImages(distribution, node.arch, found, config.install.images)}]
    } catch (error) {
      problems.push(`node ${node.name}: ${isHomelabError(error) ? error.oneLine() : (error as Error).message}`)
      return []
    }
  })
  const announced = new Set<string>()
  const fetched = await Promise.all(decided.map(async ({node, found, decision}) => {
    if (decision.mode !== 'archive') return {node, plan: {mode: decision.mode, reason: decision.reason} as PlannedImages}
    const archives: NonNullable<PlannedImages['archives']> = []
    for (const file of decision.archives) {
      if (!announced.has(`${node.arch}/${file}`)) request.onProgress?.(`fetching and verifying ${file} of ${target.format()} for ${node.arch}`)
      announced.add(`${node.arch}/${file}`)
      try {
        const artifact = await deps.release.artifact(target, node.arch, file, request.signal)
        archives.push({file, sha256: artifact.sha256, size: artifact.size, hadPrevious: found.entries.some((e) => e.file === file)})
      } catch (error) {
        problems.push(`node ${node.name} (images from an archive: ${decision.reason}): ${isHomelabError(error) ? error.oneLine() : (error as Error).message}`)
        return undefined
      }
    }
    const needKb = Math.ceil(archives.reduce((sum, a) => sum + a.size, 0) / 1024) + IMAGES_HEADROOM_KB
    const uploadKb = Math.ceil(Math.max(...archives.map((a) => a.size)) / 1024)
    const freeTmp = facts.get(node.name)?.freeTmpKb ?? 0
    if (found.freeKb < needKb || freeTmp < uploadKb) {
      problems.push(`node ${node.name}: not enough free disk for the images archives (${wholeMib(found.freeKb)} free in ${found.dir}, ${wholeMib(needKb)} needed; ${wholeMib(freeTmp)} free in /tmp, ${wholeMib(uploadKb)} needed for the upload)`)
      fix.push(`free disk on ${node.name} (the old archives stay until the run is verified)`)
      return undefined
    }
    return {node, plan: {mode: 'archive', reason: decision.reason, dir: found.dir, archives} as PlannedImages}
  }))
  for (const entry of fetched) if (entry) plans.set(entry.node.name, entry.plan)
  await checkMirrors(deps, target, decided.filter((d) => d.decision.mode === 'registry'), request, out)
  return plans
}

/**
 * Registry mode: every image of the target release must be in each node's mirror before the
 * first change. The questions are asked from this machine with each node's own registries.yaml
 * (and the CA and client files it names, read from the node): see registry-check.ts for why.
 */
async function checkMirrors(
  deps: BinaryUpgradeDeps,
  target: ReleaseVersion,
  nodes: ReadonlyArray<{node: Omit<PlannedNode, 'newSha256'>; found: NodeImagesFacts}>,
  request: PreflightRequest,
  {problems, fix, warnings}: {problems: string[]; fix: string[]; warnings: string[]},
): Promise<void> {
  const {distribution, inventory} = deps
  const readNodeFile = async (name: string, file: string) => {
    const node = inventory.nodes.find((n) => n.name === name) as InventoryNode
    return script(await deps.connect(node), 'cat -- "$1"', [file], {privileged: true, signal: request.signal})
  }
  // rke2 lists images per arch; nodes of one arch share one list and one check.
  for (const arch of new Set(nodes.map((n) => n.node.arch))) {
    const list = distribution.images.imageList(arch)
    const ofArch = nodes.filter((n) => n.node.arch === arch)
    request.onProgress?.(`asking the registry mirrors of ${ofArch.map((n) => n.node.name).join(', ')} for the images of ${target.format()}`)
    try {
      const images = parseImageList(await deps.release.text(target, list, request.signal), list)
      const result = await checkRegistryImages({
        images,
        nodes: ofArch.map(({node, found}) => ({node: node.name, registriesYaml: found.registriesYaml, registriesPath: found.registriesPath})),
        readNodeFile,
        signal: request.signal,
      })
      // One line per set of nodes: a mirror for a private registry alone leaves every release image unmirrored.
      const unmirrored = new Map<string, string[]>()
      for (const {image, nodes: on} of result.unmirrored) unmirrored.set(on.join(', '), [...(unmirrored.get(on.join(', ')) ?? []), image])
      for (const [on, list] of unmirrored) {
        warnings.push(`${list.length === 1 ? list[0] : `${list.length} images of ${target.format()} (${list.slice(0, 2).join(', ')}…)`} ${list.length === 1 ? 'has' : 'have'} no mirror in registries.yaml on ${on}: containerd pulls them from their own registry`)
      }
      warnings.push(...result.warnings)
      const refusal = registryCheckError(result)
      if (refusal) {
        problems.push(refusal.message)
        fix.push(refusal instanceof MissingImagesError ? `copy the missing images into the mirror, then run again:\n${refusal.hint}` : (refusal.hint ?? 'check the mirror'))
      }
    } catch (error) {
      problems.push(isHomelabError(error) ? error.oneLine() : (error as Error).message)
    }
  }
}

/** Free space as df reports it (KiB), in whole MiB. */
function wholeMib(kb: number): string {
  return `${Math.round(kb / 1024)} MiB`
}

/**
 * The `.skip` files must be the same on every server: a component skipped on one server and
 * applied by another is fought over by their deploy controllers. Returns the components all
 * servers skip (left alone by this upgrade); a disagreement is a problem naming each server's files.
 */
function judgeSkippedManifests(servers: readonly InventoryNode[], facts: ReadonlyMap<string, NodeFacts>, dirForHint: string, problems: string[], fix: string[]): string[] {
  const lists = servers.flatMap((server) => {
    const list = facts.get(server.name)?.skipManifests
    return list ? [{name: server.name, list}] : []
  })
  const all = [...new Set(lists.flatMap((s) => s.list))].sort()
  const common = all.filter((file) => lists.every((s) => s.list.includes(file)))
  if (common.length === all.length) return common.map((file) => file.replace(/\.skip$/, ''))
  for (const file of all.filter((f) => !common.includes(f))) {
    const have = lists.filter((s) => s.list.includes(file)).map((s) => s.name)
    const lack = lists.filter((s) => !s.list.includes(file)).map((s) => s.name)
    problems.push(`the servers disagree about ${file}: present on ${have.join(', ')}, missing on ${lack.join(', ')}`)
    fix.push(`make the .skip files in ${dirForHint} the same on every server (create ${file} on ${lack.join(', ')}, or remove it from ${have.join(', ')})`)
  }
  return []
}

async function inspectNode(deps: BinaryUpgradeDeps, node: InventoryNode, signal?: AbortSignal): Promise<NodeFacts> {
  const {distribution, config} = deps
  const transport = await deps.connect(node)
  // Everything this node is asked, in one round trip.
  const found = await probeBinaryNode(transport, {
    distribution,
    become: node.ssh.become,
    sudoUser: node.ssh.user,
    binDir: node.binDir,
    binDirExplicit: node.binDirExplicit,
    service: distribution.services[node.role],
    serviceSetting: config.install.service,
    manifestsDir: node.role === 'server' ? distribution.manifestsDir(node.dataDir) : undefined,
    images: config.install.images === 'pull' ? undefined : {dir: distribution.images.dir(node.dataDir), registriesPath: distribution.images.registriesFile(node.configDir)},
    signal,
  })
  const {binDir, binary, installedVersion, arch, serviceManager, sha256: previousSha256, freeBinKb: freeBin, freeTmpKb: freeTmp, owner, skipManifests, images: imagesFacts} = found
  if (owner && config.install.allowPackageOwnedBinary !== true) {
    throw new PreflightError(`${binary} belongs to the ${owner.manager} package ${owner.name}; replacing it would leave the package database wrong`, {
      hint: `upgrade ${distribution.name} through the package manager (${owner.manager === 'rpm' ? 'dnf/yum' : 'apt'}), or set install.allowPackageOwnedBinary: true in homelab.yaml to replace it anyway`,
    })
  }
  // The new binary, the staged copy and the .prev copy live side by side for a moment.
  if (freeBin < 2 * BINARY_HEADROOM_KB || freeTmp < BINARY_HEADROOM_KB) {
    throw new PreflightError(`not enough free disk (${Math.round(freeBin / 1024)} MiB in ${binDir}, ${Math.round(freeTmp / 1024)} MiB in /tmp)`, {
      hint: `free at least ${(2 * BINARY_HEADROOM_KB) / 1024} MiB in ${binDir} and ${BINARY_HEADROOM_KB / 1024} MiB in /tmp`,
    })
  }
  const fromVersion = node.cluster?.kubeletVersion || installedVersion
  return {
    ...plannedBase(node, arch, fromVersion),
    binDir,
    dataDir: node.dataDir,
    serviceManager,
    traits: [serviceManager],
    installedVersion,
    previousSha256,
    skipManifests,
    imagesFacts,
    freeTmpKb: freeTmp,
  }
}

/** What the API and homelab.yaml say before any node is asked: names that do not match, runs left over, nodes NotReady. */
export function clusterProblems(inventory: Inventory, only: readonly string[] | undefined, problems: string[], fix: string[]): void {
  for (const name of only ?? []) {
    if (!inventory.nodes.some((node) => node.name === name)) problems.push(`--nodes names ${name}, which is not in the inventory`)
  }
  for (const name of inventory.onlyInFile) {
    problems.push(`node ${name} is in homelab.yaml but not in the cluster`)
    fix.push(`remove ${name} from homelab.yaml or check the kubeconfig context`)
  }
  if (inventory.onlyInCluster.length > 0 && !only) {
    problems.push(`node(s) ${inventory.onlyInCluster.join(', ')} are in the cluster but not in homelab.yaml; they would be left behind`)
    fix.push('add them to homelab.yaml, set discover: true, or limit the run with --nodes')
  }

  // The API's view: every node Ready, versions, who is cordoned.
  for (const node of inventory.nodes) {
    if (!node.cluster) continue
    if (node.cluster.cordonedBy) {
      problems.push(`node ${node.name} is still cordoned by homelab run ${node.cluster.cordonedBy}`)
      fix.push(`finish that run (homelab k8s upgrade --resume ${node.cluster.cordonedBy}) or undo it (homelab k8s rollback ${node.cluster.cordonedBy})`)
    }
    if (!node.cluster.ready) {
      problems.push(`node ${node.name} is NotReady (${node.cluster.readyReason})`)
      fix.push(`bring ${node.name} back to Ready before upgrading`)
    }
  }
}

/** Whether this run takes a Velero backup, and whether its storage location can take one now. */
export async function checkVelero(deps: UpgradeDeps, skipBackup: boolean, problems: string[]): Promise<boolean> {
  const {config, kube} = deps
  const wantVelero = !skipBackup && config.upgrade.backup.velero.enabled
  if (wantVelero) {
    try {
      await checkStorageLocation(kube, veleroSettings(config))
    } catch (error) {
      problems.push(isHomelabError(error) ? error.oneLine() : `cannot read Velero's BackupStorageLocation: ${(error as Error).message}`)
    }
  }
  return wantVelero
}

/** Each node's drain as it would go now; pods nothing would bring back and PDBs at zero are problems. */
export async function planDrains(deps: UpgradeDeps, nodes: ReadonlyArray<{name: string; role: string}>, problems: string[], fix: string[]): Promise<DrainReport[]> {
  const {config, kube} = deps
  const settings = drainSettings(config)
  // One list of pods and one of budgets for all the nodes; the reports keep the nodes' order.
  const plans = await planDrainsFor(kube, nodes.map((node) => node.name), settings)
  return nodes.map((node, index) => {
    const plan = plans[index] as DrainPlan
    for (const blocker of plan.blockers) {
      problems.push(`${node.role} ${node.name} cannot be drained: ${blocker.pod}: ${blocker.reason}`)
      fix.push(blocker.fix)
    }
    for (const blocked of plan.pdbBlocked) {
      problems.push(`${node.role} ${node.name} cannot be drained now: PodDisruptionBudget ${blocked.pdb} allows no disruption of ${blocked.pod}`)
      fix.push(`scale up the workload behind ${blocked.pdb} or relax the budget`)
    }
    return {node: node.name, evict: plan.evict.map((pod) => `${pod.metadata?.namespace}/${pod.metadata?.name}`), ignored: plan.ignored.length, pdbBlocked: plan.pdbBlocked}
  })
}

/** All problems at once, so one run tells the user everything to fix (exit 3, nothing changed). */
export function refuseIfProblems(target: ReleaseVersion, problems: readonly string[], fix: readonly string[]): void {
  if (problems.length === 0) return
  const unique = [...new Set(fix)]
  throw new PreflightError(`pre-flight refused the upgrade to ${target.format()}; nothing was changed:\n  - ${problems.join('\n  - ')}`, {
    hint: unique.length > 0 ? unique.join('; ') : 'fix the problems listed and run again',
  })
}

/** The plan, servers and agents each in upgrade order. */
export function planOf<N extends PlannedNodeBase>(target: ReleaseVersion, planned: readonly N[], rest: Omit<UpgradePlan<N>, 'target' | 'servers' | 'agents'>): UpgradePlan<N> {
  return {target: target.format(), servers: planned.filter((n) => n.role === 'server'), agents: planned.filter((n) => n.role === 'agent'), ...rest}
}

/** What every distribution's plan says of a node: who it is, how to reach it, where it starts. */
export function plannedBase(node: InventoryNode, arch: PlannedNodeBase['arch'], fromVersion: string): PlannedNodeBase {
  return {
    name: node.name,
    role: node.role,
    ...(node.serverKind ? {serverKind: node.serverKind} : {}),
    host: node.host,
    ...(node.ssh.user ? {sshUser: node.ssh.user} : {}),
    arch,
    fromVersion,
    // Cordoned by someone else before we came: it stays cordoned and we never uncordon it.
    preCordoned: node.cluster?.unschedulable === true && node.cluster.cordonedBy === undefined,
  }
}
