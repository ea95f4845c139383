/**
 * Every name `plan generate` puts into the Plans is checked with the Kubernetes rule before
 * anything is asked or printed: a bad one exits 2 with the rule and an example that works.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {ExitCode, UsageError} from '../src/errors.js'
import {generatePlans, type GenerateRequest} from '../src/suc/generate.js'
import {defaultConfig} from './suc-fixture.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const TO = 'v1.31.5+k3s1'

/** Any request to the network fails the test: names are judged before the channel server or the cluster. */
const noNetwork: typeof fetch = async (input) => assert.fail(`asked the network: ${String(input)}`)

function generate(request: Partial<GenerateRequest>) {
  return generatePlans({config: defaultConfig(), fetch: noNetwork}, {to: TO, cluster: 'offline', ...request})
}

describe('names in the plans follow the Kubernetes rules', () => {
  const bad: Array<[string, Partial<GenerateRequest>, RegExp, RegExp]> = [
    ['namespace with _ and !', {namespace: 'Bad_Namespace!'}, /^--namespace "Bad_Namespace!" is not a valid name: at most 63 characters: lowercase letters, digits and "-"/, /--namespace system-upgrade/],
    ['namespace in capitals', {namespace: 'System-Upgrade'}, /--namespace "System-Upgrade" is not a valid name/, /--namespace system-upgrade/],
    ['namespace with a dot', {namespace: 'system.upgrade'}, /--namespace "system\.upgrade" is not a valid name/, /--namespace system-upgrade/],
    ['namespace of 64 characters', {namespace: 'a'.repeat(64)}, /is not a valid name: at most 63 characters/, /--namespace/],
    ['namespace ending in -', {namespace: 'upgrades-'}, /starting and ending with a letter or digit/, /--namespace/],
    ['name prefix in capitals', {namePrefix: 'Lab-'}, /^plan name \(from --name-prefix "Lab-"\) "Lab-etcd" is not a valid name: at most 63 characters/, /--name-prefix homelab-/],
    ['name prefix making names too long', {namePrefix: `${'x'.repeat(60)}-`}, /from --name-prefix .* is not a valid name: at most 63 characters/, /--name-prefix homelab-/],
    ['image with capitals in the path', {image: 'registry.lan/Rancher/k3s-upgrade'}, /^--image "registry\.lan\/Rancher\/k3s-upgrade" is not a valid image repository: an image repository is \[registry\[:port\]\/\]path/, /--image registry\.lan:5000\/rancher\/k3s-upgrade/],
    ['image with a shell character', {image: 'rancher/k3s-upgrade;reboot'}, /is not a valid image repository/, /--image /],
    ['image with a double slash', {image: 'registry.lan//k3s-upgrade'}, /is not a valid image repository/, /--image /],
    ['image with a tag', {image: 'rancher/k3s-upgrade:v1.31.5-k3s1'}, /carries a tag or digest/, /--image rancher\/k3s-upgrade/],
    ['pull secret with _', {imagePullSecrets: ['reg_cred']}, /^--image-pull-secret "reg_cred" is not a valid name: at most 253 characters: lowercase letters, digits, "-" and "\."/, /--image-pull-secret regcred/],
    ['second pull secret in capitals', {imagePullSecrets: ['regcred', 'RegCred']}, /--image-pull-secret "RegCred" is not a valid name/, /regcred/],
    ['selector key with !', {serverSelector: 'bad!key=x'}, /--server-selector: "bad!key=x" has an invalid label key "bad!key" \(a label key is \[prefix\/\]name: the name at most 63 characters/, /e\.g\. node-role\.kubernetes\.io\/control-plane in \(true\)/],
    ['selector key with a bad prefix', {agentSelector: 'Example.COM/role=x'}, /--agent-selector: .* has an invalid label key "Example\.COM\/role" .*the prefix, if any, a DNS subdomain/, /e\.g\. /],
    ['selector value with !', {serverSelector: 'tier=gold!'}, /--server-selector: "tier=gold!" has an invalid label value "gold!" \(a label value is empty or at most 63 characters/, /e\.g\. /],
    ['selector value of 64 characters', {agentSelector: `tier in (${'v'.repeat(64)})`}, /has an invalid label value/, /e\.g\. /],
    ['toleration key with !', {tolerations: ['dedicated!:NoSchedule']}, /--tolerations: "dedicated!:NoSchedule" has an invalid key "dedicated!" \(a label key is/, /e\.g\. node-role\.kubernetes\.io\/control-plane:NoSchedule/],
    ['toleration value with a space', {tolerations: ['dedicated=a b:NoSchedule']}, /--tolerations: .* has an invalid value "a b" \(a label value is/, /e\.g\. /],
  ]
  for (const [name, request, message, hint] of bad) {
    it(`refuses a ${name} with the rule and an example`, async () => {
      await assert.rejects(generate(request), (error: UsageError) => {
        assert.ok(error instanceof UsageError, String(error))
        assert.equal(error.exitCode, ExitCode.usage)
        assert.match(error.message, message)
        assert.match(error.hint ?? '', hint)
        return true
      })
    })
  }

  it('accepts names that keep the rules', async () => {
    const generated = await generate({
      namespace: 'system-upgrade-2',
      namePrefix: 'lab-v2-',
      image: 'registry.lan:5000/mirror/k3s__upgrade-x',
      imagePullSecrets: ['regcred', 'registry.lan-pull'],
      serverSelector: 'example.com/role in (server),tier=',
      tolerations: ['example.com/dedicated=upgrade_1.x:NoSchedule', '*'],
    })
    assert.deepEqual(generated.plans.map((p) => [p.metadata.namespace, p.metadata.name]), [
      ['system-upgrade-2', 'lab-v2-server'],
      ['system-upgrade-2', 'lab-v2-agent'],
    ])
    assert.equal(generated.server.spec.upgrade?.image, 'registry.lan:5000/mirror/k3s__upgrade-x')
  })
})

describe('homelab k8s plan generate --namespace Bad_Namespace!', () => {
  let dir: string
  before(async () => {
    assert.ok(existsSync(path.join(ROOT, 'dist', 'commands', 'k8s', 'plan', 'generate.js')), 'the CLI is not built: run `npm run build` (npm test does) before this file')
    dir = await mkdtemp(path.join(tmpdir(), 'homelab-names-'))
  })
  after(() => rm(dir, {recursive: true, force: true}))

  it('prints no plans and exits 2 with the rule and an example', async () => {
    const r = await new Promise<{code: number; stdout: string; stderr: string}>((resolve) => {
      execFile(
        process.execPath,
        [path.join(ROOT, 'bin', 'run.js'), 'k8s', 'plan', 'generate', '--to', TO, '--namespace', 'Bad_Namespace!'],
        {cwd: dir, env: {PATH: process.env.PATH ?? '', HOME: dir, NO_COLOR: '1'}, timeout: 30_000},
        (error, stdout, stderr) => resolve({code: error ? Number((error as {code?: number}).code ?? 1) : 0, stdout, stderr}),
      )
    })
    assert.equal(r.code, 2, r.stderr)
    assert.equal(r.stdout, '')
    assert.equal(
      r.stderr,
      'homelab: --namespace "Bad_Namespace!" is not a valid name: at most 63 characters: lowercase letters, digits and "-", starting and ending with a letter or digit (fix: e.g. --namespace system-upgrade)\n',
    )
  })
})
