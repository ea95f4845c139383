/**
 * Start-up guard (issue 11): `--help`, `--version`, `k8s upgrade --help` and an offline
 * `plan generate` must not load the Kubernetes client, ssh2, listr2 or execa — together they are
 * most of a cold start. Asserted by the modules a run resolves (an ESM resolve hook), not by timing.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, test} from 'node:test'
import {pathToFileURL} from 'node:url'
import {promisify} from 'node:util'

import {REPO_ROOT} from '../sim/homelab.js'

const run = promisify(execFile)
const HEAVY = ['@kubernetes/client-node', 'ssh2', 'listr2', 'execa']
const BUNDLED: Record<string, string> = {'kubernetes-client': '@kubernetes/client-node', zod: 'zod'}

let dir: string
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'homelab-startup-'))
  await writeFile(path.join(dir, 'hook.mjs'), `import {appendFileSync} from 'node:fs'
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context)
  appendFileSync(process.env.HOMELAB_TEST_LOADED, resolved.url + '\\n')
  return resolved
}
`)
  await writeFile(path.join(dir, 'register.mjs'), `import {register} from 'node:module'\nregister(${JSON.stringify(pathToFileURL(path.join(dir, 'hook.mjs')).href)})\n`)
})
after(() => rm(dir, {recursive: true, force: true}))

/** The packages under node_modules a CLI run resolved, and what it printed. */
async function loaded(args: string[], options: {mayFail?: boolean} = {}): Promise<{packages: Set<string>; unbundled: Set<string>; stdout: string}> {
  const log = path.join(dir, `${args.join('_').replace(/[^a-z0-9]+/gi, '-')}.log`)
  const {stdout} = await run(process.execPath, ['--import', pathToFileURL(path.join(dir, 'register.mjs')).href, path.join(REPO_ROOT, 'bin', 'run.js'), ...args], {
    cwd: dir, // no homelab.yaml here
    env: {...process.env, HOMELAB_TEST_LOADED: log, HOME: dir, XDG_CONFIG_HOME: dir, KUBECONFIG: path.join(dir, 'none')},
  }).catch((error: {stdout?: string; stderr?: string}) => {
    if (!options.mayFail) throw error
    return {stdout: `${error.stdout ?? ''}${error.stderr ?? ''}`}
  })
  const packages = new Set<string>()
  const unbundled = new Set<string>()
  for (const url of (await readFile(log, 'utf8')).split('\n')) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
    if (match) packages.add(match[1])
    if (match) unbundled.add(match[1])
    // The build bundles these packages into one file each (src/bundled): loading it loads the package.
    const bundled = /\/dist\/src\/bundled\/([^/]+)\.js$/.exec(url)
    if (bundled) packages.add(BUNDLED[bundled[1]] ?? `unknown bundle ${bundled[1]}`)
  }
  return {packages, unbundled, stdout}
}

const FAST = [
  ['--help'],
  ['--version'],
  ['k8s', 'upgrade', '--help'],
  ['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1', '--offline'],
  // Issue 10's commands: init loads the client and ssh2 only once it runs; the others never need them.
  ['init', '--help'],
  ['config', 'schema'],
  ['k8s', 'history'],
  ['autocomplete', '--help'],
]
for (const args of FAST) {
  test(`homelab ${args.join(' ')} loads none of ${HEAVY.join(', ')}`, async () => {
    const {packages, stdout} = await loaded(args)
    assert.ok(stdout.length > 0, 'the command printed its output')
    assert.ok(packages.has('@oclif/core'), 'the hook saw the run (oclif was resolved)')
    assert.deepEqual(HEAVY.filter((p) => packages.has(p)), [])
  })
}

test('the guard can fail: a command that needs the API loads the Kubernetes client', async () => {
  // Without --offline it tries the cluster (and warns that there is no kubeconfig): the client is loaded then.
  const {packages} = await loaded(['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1'])
  assert.ok(packages.has('@kubernetes/client-node'))
})

test('k8s upgrade loads the client and ssh2 but not execa, which only a node with connection: local needs', async () => {
  // No homelab.yaml here: the run stops there, after the command and the library it imports are loaded.
  const {packages, unbundled, stdout} = await loaded(['k8s', 'upgrade', '--to', 'v1.31.5+k3s1', '--dry-run'], {mayFail: true})
  assert.match(stdout, /no cluster file found/)
  assert.ok(packages.has('@kubernetes/client-node') && packages.has('ssh2'), [...packages].join(' '))
  assert.ok(!packages.has('execa'), 'execa was loaded')
  // From the build's one-file bundles, not module by module (~0.4 s of the start-up).
  assert.deepEqual(['@kubernetes/client-node', 'zod'].filter((p) => unbundled.has(p)), [])
})
