/**
 * Every usage error exits 2 with one line naming the problem and where the fix is, whoever
 * refuses the command line: oclif's parser (including the refusals it throws as plain errors),
 * its command lookup, or our own checks. Runs the compiled CLI (`npm run build` first; `npm test`
 * does) in a home and cwd of its own: no cluster file, no kubeconfig, nothing to reach.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {after, before, describe, test} from 'node:test'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const BIN = path.join(ROOT, 'bin', 'run.js')

interface Run {
  code: number
  stdout: string
  stderr: string
}

let dir: string
before(async () => {
  assert.ok(existsSync(path.join(ROOT, 'dist', 'commands', '_cli', 'run-cli.js')), 'the CLI is not built: run `npm run build` (npm test does) before this file')
  dir = await mkdtemp(path.join(tmpdir(), 'homelab-usage-'))
})
after(() => rm(dir, {recursive: true, force: true}))

function homelab(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], {cwd: dir, env: {PATH: process.env.PATH ?? '', HOME: dir, NO_COLOR: '1'}, timeout: 30_000}, (error, stdout, stderr) =>
      resolve({code: error ? Number((error as {code?: number}).code ?? 1) : 0, stdout, stderr}),
    )
  })
}

const V = 'v1.32.0+k3s1'

/** [command line, what the one line must say]. */
const CASES: Array<[string[], RegExp]> = [
  // oclif's parser, errors it throws without marking them as parse errors
  [['k8s', 'upgrade', '--to', V, '--to', 'v1.33.0+k3s1'], /--to can only be specified once/],
  [['k8s', 'upgrade', '--to'], /--to expects a value/],
  [['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1', '--to', 'v1.31.6+k3s1', '--offline'], /--to can only be specified once/],
  [['k8s', 'plan', 'status', '--timeout'], /--timeout expects a value/],
  // a flag's own parser
  [['k8s', 'upgrade', '--to', V, '--concurrency', '0'], /^homelab: --concurrency: Expected an integer greater than or equal to 1/],
  [['k8s', 'upgrade', '--to', V, '--concurrency', 'many'], /--concurrency: Expected an integer/],
  [['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1', '--offline', '--agent-concurrency', 'x'], /--agent-concurrency: Expected an integer/],
  // the parser's marked errors
  [['k8s', 'upgrade', '--bogus'], /Nonexistent flag: --bogus/],
  [['k8s', 'upgrade', '--on-failure', 'maybe'], /Expected --on-failure=maybe to be one of: compensate, stop/],
  [['k8s', 'upgrade', '--to', V, '--log-format', 'xml'], /Expected --log-format=xml to be one of: text, json/],
  [['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1', '--distribution', 'talos'], /Expected --distribution=talos to be one of/],
  [['k8s', 'upgrade', '--to', V, '--resume', 'x'], /cannot also be provided when using/],
  [['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1', '--offline', '--check-cluster'], /cannot also be provided when using/],
  [['k8s', 'plan', 'generate'], /Missing required flag to/],
  [['k8s', 'rollback', 'run-a', 'run-b'], /Unexpected argument: run-b/],
  [['k8s', 'status', '--accept-new-host-keys=yes'], /Unexpected argument: yes/],
  // the command lookup: arguments a command does not take, commands that do not exist
  [['k8s', 'upgrade', V], /k8s upgrade takes no arguments, got "v1\.32\.0\+k3s1"/],
  [['k8s', 'status', 'server-1'], /k8s status takes no arguments, got "server-1"/],
  [['k8s', 'upgarde'], /"k8s upgarde" is not a homelab command; did you mean "k8s upgrade"\?/],
  [['k8s', 'plan', 'generat', '--to', V], /"k8s plan generat" is not a homelab command; did you mean "k8s plan generate"\?/],
  [['kube', 'status'], /"kube" is not a homelab command/],
  // our own checks, before anything is read
  [['k8s', 'upgrade'], /say where to go: --to/],
  [['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1; rm -rf /', '--offline'], /"v1\.31\.5\+k3s1; rm -rf \/" is not a k3s version/],
  [['k8s', 'status'], /no cluster file found/],
]

describe('usage errors exit 2 with one line and the fix', {concurrency: 4}, () => {
  for (const [args, says] of CASES) {
    test(`homelab ${args.join(' ')}`, async () => {
      const r = await homelab(args)
      assert.equal(r.code, 2, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
      assert.equal(r.stdout, '')
      const lines = r.stderr.trimEnd().split('\n')
      assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`)
      assert.match(lines[0], /^homelab: /)
      assert.match(lines[0], says)
      assert.match(lines[0], /\(fix: .+\)$/)
      assert.doesNotMatch(r.stderr, /›|Error:|\n\s+at /, 'no oclif banner, no stack')
    })
  }

  test('--json: the same refusal as a JSON error object on stdout, still exit 2', async () => {
    for (const args of [
      ['k8s', 'upgrade', '--to', V, '--to', 'v1.33.0+k3s1', '--json'],
      ['k8s', 'upgrade', '--concurrency', '0', '--json'],
      ['k8s', 'upgarde', '--json'],
    ]) {
      const r = await homelab(args)
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`)
      assert.equal(r.stderr, '')
      const {error} = JSON.parse(r.stdout) as {error: {type: string; message: string; hint: string; exitCode: number}}
      assert.equal(error.type, 'UsageError')
      assert.equal(error.exitCode, 2)
      assert.ok(error.message && error.hint, r.stdout)
    }
  })

  test('help and version still exit 0', async () => {
    for (const args of [['--version'], ['k8s', '--help'], ['k8s'], ['k8s', 'upgrade', '--help']]) {
      const r = await homelab(args)
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
    }
  })
})
