import {PatchStrategy, setHeaderOptions} from '../bundled/kubernetes-client.js'
import type {KubeClients} from './client.js'
import {isNotFound} from './api-errors.js'
import {CORDONED_BY_ANNOTATION} from './nodes.js'

const strategicMerge = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)

/**
 * Marks the node unschedulable and names the run that did it, so that only that run (or a
 * rollback of it) ever uncordons it. Safe to repeat.
 */
export async function cordonNode(kube: KubeClients, node: string, runId: string): Promise<void> {
  await kube.core.patchNode(
    {name: node, body: {spec: {unschedulable: true}, metadata: {annotations: {[CORDONED_BY_ANNOTATION]: runId}}}},
    strategicMerge,
  )
}

export type UncordonResult = 'uncordoned' | 'not-ours' | 'already-schedulable' | 'node-gone'

/**
 * Uncordons only a node this run cordoned (the annotation names it). "Already so" counts as
 * success, so a compensation can run twice.
 */
export async function uncordonNode(kube: KubeClients, node: string, runId: string): Promise<UncordonResult> {
  let current
  try {
    current = await kube.core.readNode({name: node})
  } catch (error) {
    if (isNotFound(error)) return 'node-gone'
    throw error
  }
  const owner = current.metadata?.annotations?.[CORDONED_BY_ANNOTATION]
  if (owner !== undefined && owner !== runId) return 'not-ours'
  if (owner === undefined && current.spec?.unschedulable) return 'not-ours'
  if (owner === undefined) return 'already-schedulable'
  await kube.core.patchNode(
    {name: node, body: {spec: {unschedulable: null}, metadata: {annotations: {[CORDONED_BY_ANNOTATION]: null}}}},
    strategicMerge,
  )
  return 'uncordoned'
}
