import {access, mkdir, writeFile} from 'node:fs/promises'
import {homedir, userInfo} from 'node:os'
import path from 'node:path'

import {Flags} from '@oclif/core'

import {CONFIG_ENV} from '../src/config/load.js'
import {resolveLocalPath} from '../src/config/schema.js'
import {shippedSchemaPath} from '../src/config/schema-json.js'
import {UsageError} from '../src/errors.js'
import type {InitNode, InitResult} from '../src/init/init.js'
import {HomelabCommand} from './_cli/base-command.js'
import {terminalPassphrasePrompt} from './_cli/passphrase.js'
import {renderTable} from './_cli/table.js'

export interface InitOutput extends InitResult {
  /** Where the file was written (or would be, with --stdout/--json). */
  file: string
  written: boolean
}

export default class Init extends HomelabCommand<typeof Init> {
  static override summary = 'Write homelab.yaml from the cluster, ~/.ssh/config and what answers over SSH'
  static override description = `Reads the kubeconfig's current cluster (or --context): its nodes with names, roles (etcd-only and control-plane-only servers included), InternalIP and arch, and the distribution from the kubelet versions. A node is reached by its name when a Host in ~/.ssh/config matches it (or by its address, which a Host may match too). Then every node is tried over SSH, read-only, as an upgrade would reach it: login, sudo -n, and where the k3s/rke2 binary (kubeadm: kubeadm) is. Only the nodes that work are written; each other one is a comment saying why.

The file starts with the yaml-language-server line naming homelab's JSON Schema, so editors complete and check it. It is written to --config, else $HOMELAB_CONFIG, else ./homelab.yaml, never over an existing file without --force. --stdout and --json print it instead.`
  static override examples = [
    '<%= config.bin %> init',
    '<%= config.bin %> init --context homelab --accept-new-host-keys',
    '<%= config.bin %> init --stdout > lab.yaml',
  ]
  static override flags = {
    force: Flags.boolean({description: 'overwrite an existing file'}),
    stdout: Flags.boolean({description: 'print the file instead of writing it'}),
    'accept-new-host-keys': Flags.boolean({description: 'trust and record host keys not yet in known_hosts (like OpenSSH accept-new); a changed key is still refused'}),
    schema: Flags.string({description: 'where the yaml-language-server line points (default: the schema shipped with homelab; a URL or a path relative to the file works too)'}),
  }

  async run(): Promise<InitOutput> {
    const {flags} = await this.parse(Init)
    const home = process.env.HOME || homedir()
    const cwd = process.cwd()
    const target = flags.config ?? process.env[CONFIG_ENV]
    const file = target ? resolveLocalPath(target, {home, baseDir: cwd}) : path.join(cwd, 'homelab.yaml')
    const print = flags.stdout || this.jsonEnabled()
    // Refused before anything is asked of the cluster or the nodes.
    if (!print && !flags.force && (await access(file).then(() => true, () => false))) {
      throw new UsageError(`${file} exists; homelab init does not overwrite it`, {hint: 'pass --force to replace it, --stdout to print the new one, or --config <other file>'})
    }
    // The Kubernetes client and ssh2 are loaded only now (start-up stays fast).
    const [{openInit}, {initConfig}] = await Promise.all([import('../src/init/open.js'), import('../src/init/init.js')])
    const deps = await openInit({
      kubeconfig: flags.kubeconfig,
      context: flags.context,
      acceptNewHostKeys: flags['accept-new-host-keys'],
      env: process.env,
      home,
      localUser: userInfo().username,
      schemaLocation: flags.schema ?? shippedSchemaPath(this.config.root),
      askPassphrase: terminalPassphrasePrompt(),
    })
    const result = await initConfig(deps)
    if (flags.stdout && !this.jsonEnabled()) {
      process.stdout.write(result.text)
      return {...result, file, written: false}
    }
    if (!print) {
      // $XDG_CONFIG_HOME/homelab/ may not exist yet.
      await mkdir(path.dirname(file), {recursive: true})
      await writeFile(file, result.text, {flag: flags.force ? 'w' : 'wx'})
    }
    // Other commands find ./homelab.yaml and $HOMELAB_CONFIG by themselves; another file needs --config.
    const found = file === path.join(cwd, 'homelab.yaml') || (process.env[CONFIG_ENV] !== undefined && file === resolveLocalPath(process.env[CONFIG_ENV] as string, {home, baseDir: cwd}))
    const next = found ? result.next : `${result.next} --config ${file}`
    if (!this.jsonEnabled()) this.log(renderInit(result, file, next))
    return {...result, next, file, written: !print}
  }
}

function renderInit(result: InitResult, file: string, next: string): string {
  const table = renderTable<InitNode>(result.nodes, [
    {header: 'NODE', get: (n) => n.name},
    {header: 'ROLE', get: (n) => (n.serverKind && n.serverKind !== 'etcd+control-plane' ? `${n.role} (${n.serverKind})` : n.role)},
    {header: 'HOST', get: (n) => n.host},
    {header: 'ARCH', get: (n) => n.arch ?? '-'},
    {header: 'KUBELET', get: (n) => n.kubeletVersion},
    {header: 'SSH', get: (n) => (n.ok ? `ok${n.become === 'none' ? ' (root)' : ', sudo ok'}${n.binDir ? `, ${n.binDir}` : ''}` : `left out: ${n.problem}`)},
  ])
  const left = result.nodes.filter((n) => !n.ok).length
  return [
    `${result.distribution} (${result.distributionSource})`,
    '',
    table,
    '',
    `Wrote ${file}: ${result.nodes.length - left} node(s)${left > 0 ? `; ${left} left out, each with a comment saying why` : ''}.`,
    `Next: ${next}`,
  ].join('\n')
}
