/**
 * A cluster for the SUC tests: the simulated API with k3s nodes, the controller's namespace and
 * ServiceAccount (unless `installed: false`), the simulated system-upgrade-controller, and a
 * KubeClients built from a kubeconfig file, as the CLI builds it.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {makeConfigSchema, type HomelabConfig} from '../src/config/schema.js'
import {KubeClients, loadKubeConfig} from '../src/kube/client.js'
import {type AddNodeOptions, SimKubeApi, type SimKubeApiOptions} from './sim/kube-api/index.js'
import {SimSucController, type SimSucOptions} from './sim/suc-controller.js'

export interface SucCluster {
  api: SimKubeApi
  suc: SimSucController
  kube: KubeClients
  kubeconfig: string
  dir: string
  config: HomelabConfig
  stop(): Promise<void>
}

export interface SucClusterOptions {
  servers?: number
  agents?: number
  version?: string
  /** Per-node versions (name → version) over `version`. */
  versions?: Record<string, string>
  /** More nodes, after `servers` and `agents` (custom labels: split roles); version as above. */
  nodes?: AddNodeOptions[]
  /** Namespace and ServiceAccount present (default true). The CRD follows `api.crds.suc`. */
  installed?: boolean
  api?: SimKubeApiOptions
  suc?: SimSucOptions
  /** Start the controller (default true). */
  controller?: boolean
}

export function defaultConfig(overrides: Record<string, unknown> = {}): HomelabConfig {
  return makeConfigSchema({home: tmpdir(), baseDir: tmpdir()}).parse({discover: true, ...overrides})
}

export async function startSucCluster(options: SucClusterOptions = {}): Promise<SucCluster> {
  const version = options.version ?? 'v1.31.4+k3s1'
  const api = await SimKubeApi.start({version, crds: {velero: false}, nodeDefaults: {readyDelayMs: 20}, ...options.api})
  const servers = Array.from({length: options.servers ?? 1}, (_, i) => `server-${i + 1}`)
  const agents = Array.from({length: options.agents ?? 2}, (_, i) => `agent-${i + 1}`)
  for (const name of servers) api.nodes.add({name, role: 'server', version: options.versions?.[name] ?? version})
  for (const name of agents) api.nodes.add({name, role: 'agent', version: options.versions?.[name] ?? version})
  for (const node of options.nodes ?? []) api.nodes.add({version: options.versions?.[node.name] ?? version, ...node})
  if (options.installed !== false) {
    api.ensureNamespace('system-upgrade')
    api.store.create({apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name: 'system-upgrade', namespace: 'system-upgrade'}})
  }
  const suc = options.controller === false ? undefined : SimSucController.attach(api, {stepMs: 5, ...options.suc})
  const dir = await mkdtemp(path.join(tmpdir(), 'homelab-suc-'))
  const kubeconfig = path.join(dir, 'kubeconfig')
  await api.writeKubeconfig(kubeconfig)
  const kube = new KubeClients(loadKubeConfig({kubeconfig, env: {}, home: dir}).kubeConfig)
  return {
    api,
    suc: suc as SimSucController,
    kube,
    kubeconfig,
    dir,
    config: defaultConfig(),
    async stop() {
      suc?.stop()
      await api.stop()
      await rm(dir, {recursive: true, force: true})
    },
  }
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const BIN = path.join(ROOT, 'bin', 'run.js')

export interface CliResult {
  code: number
  stdout: string
  stderr: string
}

/** The CLI tests run the compiled CLI, as a user does: `npm run build` first (`npm test` does). */
export function requireBuiltCli(): void {
  assert.ok(existsSync(path.join(ROOT, 'dist', 'commands', 'k8s', 'plan', 'status.js')), 'the CLI is not built: run `npm run build` (npm test does) before this file')
}

/** Runs `homelab <args>` with a home and cwd of its own (no ~/.kube/config, no stray homelab.yaml). */
export function cli(c: SucCluster, args: string[], extra: string[] = ['--kubeconfig', c.kubeconfig]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args, ...extra],
      {cwd: c.dir, env: {PATH: process.env.PATH ?? '', HOME: c.dir, NO_COLOR: '1'}, timeout: 60_000},
      (error, stdout, stderr) => resolve({code: error ? Number((error as {code?: number}).code ?? 1) : 0, stdout, stderr}),
    )
  })
}
