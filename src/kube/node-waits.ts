/** Waits on Nodes by watch, shared by the upgrade sagas: one node Ready at a version, several Ready. */
import type {V1Node} from '@kubernetes/client-node'

import type {KubeClients} from './client.js'
import {isNodeReady} from './nodes.js'
import {waitFor} from './wait.js'

/** Until `name` is Ready with kubeletVersion = version. `hint` says what to look at on a timeout. */
export function waitNodeReadyAt(kube: KubeClients, name: string, version: string, options: {timeoutMs: number; hint: string; signal?: AbortSignal}): Promise<true> {
  return waitFor<V1Node, true>({
    kube,
    path: '/api/v1/nodes',
    query: {fieldSelector: `metadata.name=${name}`},
    list: () => kube.core.listNode({fieldSelector: `metadata.name=${name}`}),
    check: (nodes) => {
      const node = nodes.get(`/${name}`)
      return node && isNodeReady(node) && node.status?.nodeInfo?.kubeletVersion === version ? true : undefined
    },
    seen: (nodes) => {
      const node = nodes.get(`/${name}`)
      if (!node) return `${name} is not registered`
      const running = node.status?.nodeInfo?.kubeletVersion
      if (isNodeReady(node)) return running === version ? undefined : `${name} is Ready, but its kubelet runs ${running} (node version mismatch, got ${running} expected ${version})`
      return `${name} is NotReady${running === version ? '' : ` at ${running}`}`
    },
    timeoutMs: options.timeoutMs,
    description: `node ${name} to be Ready at ${version}`,
    hint: options.hint,
    signal: options.signal,
  })
}

/** Until every node of `names` is Ready: never two servers down at once. `what` names them ("servers"). */
export function waitNodesReady(kube: KubeClients, names: readonly string[], options: {timeoutMs: number; what: string; signal?: AbortSignal}): Promise<true> {
  return waitFor<V1Node, true>({
    kube,
    path: '/api/v1/nodes',
    list: () => kube.core.listNode(),
    check: (nodes) => (names.every((name) => {
      const node = nodes.get(`/${name}`)
      return node !== undefined && isNodeReady(node)
    }) ? true : undefined),
    timeoutMs: options.timeoutMs,
    description: `${options.what} ${names.join(', ')} to be Ready`,
    hint: `one of the ${options.what} is not Ready; fix it before going on (homelab k8s status)`,
    signal: options.signal,
  })
}
