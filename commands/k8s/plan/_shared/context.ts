import {homedir} from 'node:os'

import {findConfigFile, loadConfig} from '../../../../src/config/load.js'
import {type HomelabConfig, makeConfigSchema} from '../../../../src/config/schema.js'
import type {KubeClients} from '../../../../src/kube/client.js'
import type {ClusterMode, GenerateRequest} from '../../../../src/suc/generate.js'
import type {PlanFlagValues} from './plan-flags.js'

export interface PlanContext {
  config: HomelabConfig
  /** The cluster file used, if any: the plan commands work without one. */
  configFile?: string
  /** Opens the API once, on first use; throws ConfigError when there is no usable kubeconfig. */
  kube: () => Promise<KubeClients>
}

/**
 * The cluster file when there is one (its drain settings and agent concurrency shape the plans),
 * else the documented defaults; the kubeconfig only when a step needs the API.
 */
export async function planContext(flags: {config?: string; kubeconfig?: string; context?: string}): Promise<PlanContext> {
  const search = {explicit: flags.config, env: process.env, cwd: process.cwd(), home: homedir()}
  let config: HomelabConfig
  let configFile: string | undefined
  if (findConfigFile(search) !== undefined) {
    // The plan commands never log in to a node: a missing SSH key is no reason to refuse them.
    const loaded = await loadConfig({...search, checkIdentityFiles: false})
    config = loaded.config
    configFile = loaded.file
  } else {
    config = makeConfigSchema({home: search.home, baseDir: search.cwd}).parse({discover: true})
  }
  let kube: Promise<KubeClients> | undefined
  return {
    config,
    configFile,
    // The Kubernetes client is most of a cold start: loaded only when a step needs the API (not for --offline).
    kube: () => (kube ??= import('../../../../src/kube/client.js').then(({KubeClients, loadKubeConfig}) => new KubeClients(loadKubeConfig({kubeconfig: flags.kubeconfig, context: flags.context, fromFile: config.kubernetes}).kubeConfig))),
  }
}

export function clusterMode(flags: Pick<PlanFlagValues, 'check-cluster' | 'offline'>): ClusterMode {
  return flags.offline ? 'offline' : flags['check-cluster'] ? 'required' : 'auto'
}

export function generateRequest(flags: PlanFlagValues, to: string): GenerateRequest {
  return {
    to,
    followChannel: flags['follow-channel'],
    distribution: flags.distribution,
    namespace: flags.namespace,
    namePrefix: flags['name-prefix'],
    agentConcurrency: flags['agent-concurrency'],
    image: flags.image,
    imagePullSecrets: flags['image-pull-secret'],
    window: flags.window,
    serverSelector: flags['server-selector'],
    agentSelector: flags['agent-selector'],
    cordonOnly: flags['cordon-only'],
    tolerations: flags.tolerations,
    cluster: clusterMode(flags),
  }
}
