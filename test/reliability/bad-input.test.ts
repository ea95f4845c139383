/**
 * Issue 9, bad input: a table of command lines and homelab.yaml edits a new user gets wrong,
 * run by the built CLI (`npm run build` first; `npm test` and `npm run test:reliability` do)
 * against one simulated k3s homelab (3 servers, 3 agents, in-process SSH). Every case must end
 * with exit 2 (usage or config error) or 3 (pre-flight refused), an error that names the problem
 * and the fix (one line, or pre-flight's list of problems), not one write to the API (leases
 * included), no node command beyond the read-only pre-flight, no binary swapped, no service
 * restarted, and no file created by a shell metacharacter smuggled into a value.
 */
import assert from 'node:assert/strict'
import {existsSync, mkdtempSync, rmSync} from 'node:fs'
import {mkdir, readFile, stat, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, describe, test} from 'node:test'

import {AS_ROOT_PROBE} from '../../src/node/binary-probe.js'
import {REPO_ROOT, type Homelab} from '../sim/homelab.js'
import {currentBinaryVersion, readCommandLog, readServiceLog} from '../sim/node-fixture.js'
import {FROM, TO, describeWrites, lab} from '../upgrade/helpers.js'

/** Where a smuggled `touch` would land: outside the homelab, removed after the file. */
const MARKS = mkdtempSync(path.join(tmpdir(), 'homelab-bad-input-'))
const mark = (name: string) => path.join(MARKS, name)
after(() => rmSync(MARKS, {recursive: true, force: true}))

interface Case {
  name: string
  /** After `homelab`. */
  args: string[]
  /** An edit of the cluster file as the homelab wrote it (restored after the case). */
  yaml?: (text: string, homelab: Homelab) => string
  /** Files the case needs, made before it runs. */
  setup?: (homelab: Homelab) => Promise<void>
  exit: 2 | 3
  /** What the error must say: the problem. */
  says: RegExp
  /** And the fix (default: any `fix:`). */
  fix?: RegExp
  /** `line`: exactly one line, `homelab: … (fix: …)`. `list`: pre-flight's `homelab: …:` then `  - problem` lines and `  fix:`. */
  shape?: 'line' | 'list'
  /** A file a shell metacharacter in the input would have created. */
  creates?: string
}

const up = (...args: string[]) => ['k8s', 'upgrade', ...args, '--yes']
const gen = (...args: string[]) => ['k8s', 'plan', 'generate', ...args]
const sub = (from: RegExp | string, to: string) => (text: string) => {
  assert.ok(typeof from === 'string' ? text.includes(from) : from.test(text), `the cluster file has no ${from}`)
  return text.replace(from, to)
}
const NOT_A_VERSION = /is not a k3s version/
const VERSION_FIX = /\(fix: use the form v1\.32\.0\+k3s1/
const YAML_FIX = /fix the YAML at line \d+ of .*homelab\.yaml/
const QUOTED_PATH = `/tmp/no such dir/it's "quoted"`

const CASES: Case[] = [
  // --to: malformed versions, shell metacharacters, channels
  {name: 'a version with ;touch', args: up('--to', `${TO};touch ${mark('semicolon')}`), exit: 2, says: NOT_A_VERSION, fix: VERSION_FIX, creates: mark('semicolon')},
  {name: 'a version that is $(…)', args: up('--to', `$(touch ${mark('subst')})`), exit: 2, says: /"\$\(touch .*\)" is not a k3s version/, fix: VERSION_FIX, creates: mark('subst')},
  {name: 'a version in backticks', args: up('--to', `\`touch ${mark('backtick')}\``), exit: 2, says: /"`touch .*`" is not a k3s version/, fix: VERSION_FIX, creates: mark('backtick')},
  {name: 'a version with && (dry run)', args: ['k8s', 'upgrade', '--dry-run', '--to', `${TO}&&touch ${mark('and')}`], exit: 2, says: NOT_A_VERSION, fix: VERSION_FIX, creates: mark('and')},
  {name: 'a version with a newline', args: up('--to', `${TO}\ntouch ${mark('newline')}`), exit: 2, says: /"v1\.31\.5\+k3s1\\ntouch .*" is not a k3s version/, fix: VERSION_FIX, creates: mark('newline')},
  {name: 'a version without the v', args: up('--to', '1.31.5+k3s1'), exit: 2, says: /lacks the leading "v"/, fix: /\(fix: use v1\.31\.5\+k3s1\)/},
  {name: 'a version with four numbers', args: up('--to', 'v1.31.5.1'), exit: 2, says: /"v1\.31\.5\.1" is not a k3s version/, fix: VERSION_FIX},
  {name: 'an rke2 version on k3s', args: up('--to', 'v1.31.5+rke2r1'), exit: 2, says: /v1\.31\.5\+rke2r1 is a rke2 version, but this cluster runs k3s/, fix: /use a k3s version/},
  {name: 'an empty --to', args: up('--to', ''), exit: 2, says: /say where to go: --to/, fix: /--dry-run/},
  {name: 'an unknown channel', args: up('--to', 'bleeding-edge'), exit: 2, says: /has no channel "bleeding-edge"/, fix: /use one of: stable, latest/},
  {name: 'a minor channel that does not exist', args: up('--to', 'v1.99'), exit: 2, says: /has no channel "v1\.99"/, fix: /use one of: stable, latest/},
  {name: 'a version that was never released', args: up('--to', 'v1.31.9+k3s1'), exit: 3, shape: 'list', says: /sha256sum-amd64\.txt: HTTP 404/, fix: /check the version and install\.releaseUrl/},
  {name: 'a downgrade', args: up('--to', 'v1.31.3+k3s1'), exit: 3, shape: 'list', says: /node server-1 runs v1\.31\.4\+k3s1; v1\.31\.3\+k3s1 would be a downgrade/, fix: /pick a target of at least v1\.31\.4\+k3s1/},
  {name: 'two minors ahead with --no-hops, no channel for the minor between', args: up('--to', 'v1.33.1+k3s1', '--no-hops'), exit: 3, says: /v1\.33\.1\+k3s1 is more than one minor version ahead of v1\.31\.4\+k3s1; nothing was changed/, fix: /first to a v1\.32 release/},
  {name: 'two minors ahead, no channel for the minor between', args: up('--to', 'v1.33.1+k3s1'), exit: 3, says: /the v1\.32 release to pass through is unknown: .*no channel "v1\.32"/, fix: /upgrade to a v1\.32 release first/},

  // flags
  {name: '--resume with --to', args: up('--resume', '--to', TO), exit: 2, says: /--to=v1\.31\.5\+k3s1 cannot also be provided when using --resume/, fix: /see homelab k8s upgrade --help/},
  {name: '--to twice', args: up('--to', TO, '--to', 'v1.31.6+k3s1'), exit: 2, says: /--to can only be specified once/},
  {name: '--concurrency 0', args: up('--to', TO, '--concurrency', '0'), exit: 2, says: /--concurrency: Expected an integer greater than or equal to 1/},
  {name: 'an unknown flag', args: up('--to', TO, '--force-it'), exit: 2, says: /Nonexistent flag: --force-it/},
  {name: 'an unknown --on-failure', args: up('--to', TO, '--on-failure', 'ignore'), exit: 2, says: /Expected --on-failure=ignore to be one of: compensate, stop/},
  {name: 'no --yes under CI', args: ['k8s', 'upgrade', '--to', TO], exit: 2, says: /refusing to change the cluster without confirmation/, fix: /pass --yes/},
  {name: '--resume with nothing to resume', args: up('--resume'), exit: 2, says: /there is no interrupted upgrade to resume/, fix: /start one with --to/},
  {name: '--resume with a run id that is $(…)', args: up('--resume', `$(touch ${mark('resume')})`), exit: 2, says: /not a run id: "\$\(touch/, creates: mark('resume')},
  {name: '--resume with a run that does not exist', args: up('--resume', '20250514-103012-3f9a1c'), exit: 2, says: /no run journal at .*20250514-103012-3f9a1c\.json/, fix: /check the run id/},
  {name: '--nodes naming a node that does not exist', args: up('--to', TO, '--nodes', 'server-9'), exit: 3, shape: 'list', says: /--nodes names server-9, which is not in the inventory/},
  {name: '--nodes with ;touch', args: up('--to', TO, '--nodes', `agent-1;touch ${mark('nodes')}`), exit: 3, shape: 'list', says: /--nodes names agent-1;touch .*, which is not in the inventory/, creates: mark('nodes')},
  {name: '--nodes naming no node at all', args: up('--to', TO, '--nodes', ','), exit: 2, says: /--nodes/},

  // homelab.yaml: syntax, unknown keys, wrong types
  {name: 'YAML: an unclosed quote', args: up('--to', TO), yaml: sub('context: homelab-sim', 'context: "homelab-sim'), exit: 2, says: /homelab\.yaml:\d+:\d+: YAML syntax error: Missing closing "quote/, fix: YAML_FIX},
  {name: 'YAML: a tab as indentation', args: up('--to', TO), yaml: sub('nodes:\n  - name: server-1', 'nodes:\n\t- name: server-1'), exit: 2, says: /YAML syntax error: Tabs are not allowed as indentation \(and \d+ more after it/, fix: /indent with spaces/},
  {name: 'YAML: an empty file', args: ['k8s', 'status'], yaml: () => '', exit: 2, says: /homelab\.yaml: the file is empty/, fix: /list at least the nodes/},
  {name: 'YAML: a list at the top', args: up('--to', TO), yaml: () => '- server-1\n- agent-1\n', exit: 2, says: /must be a mapping of settings at the top level, got a list/},
  {name: 'an unknown top-level key', args: up('--to', TO), yaml: (text) => `${text}upgrades: {}\n`, exit: 2, says: /upgrades: unknown key \(did you mean `upgrade`\?\)/, fix: /rename it to upgrade, or remove it/},
  {name: 'an unknown nested key', args: up('--to', TO), yaml: sub('identityFile:', 'identityfile:'), exit: 2, says: /ssh\.identityfile: unknown key \(did you mean `identityFile`\?\)/, fix: /rename it to ssh\.identityFile/},
  {name: 'a port that is a word', args: ['k8s', 'status'], yaml: sub(/port: \d+/, 'port: twenty-two'), exit: 2, says: /nodes\[0\]\.ssh\.port: must be a number, got "twenty-two"/},
  {name: 'a role that does not exist', args: ['k8s', 'status'], yaml: sub('role: agent', 'role: master'), exit: 2, says: /nodes\[3\]\.role: must be "server" or "agent", got "master"/},
  {name: 'agentConcurrency a word', args: up('--to', TO), yaml: sub('agentConcurrency: 2', 'agentConcurrency: two'), exit: 2, says: /upgrade\.agentConcurrency: must be a number, got "two"/},
  {name: 'agentConcurrency 0', args: up('--to', TO), yaml: sub('agentConcurrency: 2', 'agentConcurrency: 0'), exit: 2, says: /upgrade\.agentConcurrency: must be at least 1, got 0/},
  {name: 'a duration in words', args: up('--to', TO), yaml: sub('timeout: 8s', 'timeout: 5 minutes'), exit: 2, says: /upgrade\.drain\.timeout: "5 minutes" is not a duration/, fix: /a duration such as 5m/},
  {name: 'nodes as a mapping', args: ['k8s', 'status'], yaml: (text) => text.replace(/^nodes:\n(?: .*\n)+/m, 'nodes: {server-1: 10.0.0.11}\n'), exit: 2, says: /nodes: must be a list, got a mapping/},
  {name: 'become: doas', args: up('--to', TO), yaml: sub(/become: \w+/, 'become: doas'), exit: 2, says: /ssh\.become: must be "sudo" or "none", got "doas"/},
  {name: 'distribution: talos', args: up('--to', TO), yaml: (text) => `distribution: talos\n${text}`, exit: 2, says: /distribution: must be "k3s", "rke2" or "kubeadm", got "talos"/},
  {name: 'install.service: runit', args: up('--to', TO), yaml: sub(/^install:\n/m, 'install:\n  service: runit\n'), exit: 2, says: /install\.service: must be "auto", "systemd" or "openrc", got "runit"/},
  {name: 'discover: a sentence', args: ['k8s', 'status'], yaml: (text) => `discover: yes please\n${text}`, exit: 2, says: /discover: must be true or false, got "yes please"/},
  {name: 'two nodes with one name', args: up('--to', TO), yaml: sub('name: agent-2', 'name: agent-1'), exit: 2, says: /nodes\[4\]\.name: "agent-1" is already the name of nodes\[3\]/, fix: /give every node its own name/},
  {name: 'a node that is not in the cluster', args: up('--to', TO), yaml: sub('name: agent-2', 'name: agent-9'), exit: 3, shape: 'list', says: /node agent-9 is in homelab\.yaml but not in the cluster/, fix: /remove agent-9 from homelab\.yaml/},

  // homelab.yaml: shell metacharacters in values that reach a node or a URL
  {name: 'a host with ;touch', args: up('--to', TO), yaml: sub(/host: 127[\d.]+/, `host: "127.0.0.1;touch ${mark('host')}"`), exit: 2, says: /nodes\[0\]\.host: ".*;touch .*" is not a host name or address/, creates: mark('host')},
  {name: 'a node name with $(…)', args: up('--to', TO), yaml: sub('name: agent-3', `name: "agent-3$(touch ${mark('name')})"`), exit: 2, says: /nodes\[5\]\.name: ".*" is not a valid Kubernetes node name/, creates: mark('name')},
  {name: 'an ssh user with ;touch', args: up('--to', TO), yaml: sub(/user: .*/, `user: "root;touch ${mark('user')}"`), exit: 2, says: /ssh\.user: ".*" is not a user name/, creates: mark('user')},
  {name: 'a proxyJump that is $(…)', args: up('--to', TO), yaml: sub('knownHosts:', `proxyJump: "$(touch ${mark('jump')})"\n  knownHosts:`), exit: 2, says: /ssh\.proxyJump: ".*" is not a jump host/, creates: mark('jump')},
  {name: 'a releaseUrl that is $(…)', args: up('--to', TO), yaml: sub(/releaseUrl: .*/, `releaseUrl: "$(touch ${mark('url')})"`), exit: 2, says: /install\.releaseUrl: ".*" is not an http\(s\) URL/, creates: mark('url')},
  // Pre-flight asks several things at once: whichever fails first names the (quoted, literal) path.
  {name: 'a binDir with ;touch (quoted on the node, refused by pre-flight)', args: up('--to', TO), yaml: sub(/binDir: (.*)/, `binDir: "$1;touch ${mark('bindir')}"`), exit: 3, shape: 'list', says: /node server-1: .*(k3s' --version` exited 127|cannot read free space of \S*bin;touch |no k3s binary at \S*bin;touch )/, creates: mark('bindir')},

  // identity files, kubeconfig, paths with spaces and quotes
  {name: 'an identity file that does not exist', args: up('--to', TO), yaml: sub(/identityFile: .*/, 'identityFile: /nonexistent/id_ed25519'), exit: 2, says: /ssh\.identityFile: the identity file \/nonexistent\/id_ed25519 does not exist/, fix: /set ssh\.identityFile to your private key/},
  {name: 'an identity file path with spaces and quotes', args: up('--to', TO), yaml: sub(/identityFile: .*/, `identityFile: ${JSON.stringify(`${QUOTED_PATH}/id`)}`), exit: 2, says: /the identity file \/tmp\/no such dir\/it's "quoted"\/id does not exist/},
  {name: 'an identity file that is a directory', args: up('--to', TO), yaml: (text, h) => sub(/identityFile: .*/, `identityFile: ${h.root}`)(text), exit: 2, says: /is a directory, not a key file/},
  {name: 'the public key as identity file', args: up('--to', TO), yaml: (text, h) => sub(/identityFile: .*/, `identityFile: ${h.identityPath}.pub`)(text), exit: 2, says: /id_ed25519\.pub is a public key, not the private key/, fix: /set ssh\.identityFile to the private key: .*id_ed25519\)/},
  {
    name: 'an identity file that is not a key',
    args: up('--to', TO),
    setup: (h) => writeFile(path.join(h.root, 'not-a-key'), 'hello\n', {mode: 0o600}),
    yaml: (text, h) => sub(/identityFile: .*/, `identityFile: ${path.join(h.root, 'not-a-key')}`)(text),
    exit: 3,
    shape: 'list',
    says: /node server-1: .*authentication failed \(tried no usable key/,
    fix: /name the right key with ssh\.identityFile/,
  },
  {name: 'a context the kubeconfig does not have (homelab.yaml)', args: ['k8s', 'status'], yaml: sub('context: homelab-sim', 'context: homelab-old'), exit: 2, says: /context "homelab-old" is not in .*kubeconfig\.yaml \(contexts: homelab-sim\)/, fix: /pass --context with one of the contexts listed/},
  {name: 'a context the kubeconfig does not have (--context)', args: up('--to', TO, '--context', 'nope'), exit: 2, says: /context "nope" is not in .*kubeconfig\.yaml/},
  {name: 'a kubeconfig path with spaces and quotes that does not exist (homelab.yaml)', args: ['k8s', 'status'], yaml: sub(/kubeconfig: .*/, `kubeconfig: ${JSON.stringify(`${QUOTED_PATH}/config`)}`), exit: 2, says: /kubeconfig \/tmp\/no such dir\/it's "quoted"\/config does not exist/, fix: /pass --kubeconfig/},
  {name: 'a --kubeconfig that does not exist', args: up('--to', TO, '--kubeconfig', `${QUOTED_PATH}/kubeconfig`), exit: 2, says: /kubeconfig \/tmp\/no such dir\/it's "quoted"\/kubeconfig does not exist/},
  {name: 'a kubeconfig that is not a kubeconfig', args: ['k8s', 'status'], yaml: (text, h) => sub(/kubeconfig: .*/, `kubeconfig: ${h.configPath}`)(text), exit: 2, says: /context "homelab-sim" is not in .*homelab\.yaml \(contexts: none\)/},
  {name: 'a kubeconfig that is a directory', args: ['k8s', 'status', '--kubeconfig', MARKS], exit: 2, says: /kubeconfig .* is a directory/},
  {
    name: 'a kubeconfig whose token the API rejects (expired)',
    args: ['k8s', 'status', '--kubeconfig', path.join(MARKS, 'expired', 'kubeconfig')],
    setup: async (h) => {
      await mkdir(path.join(MARKS, 'expired'), {recursive: true})
      const text = await readFile(h.kubeconfigPath, 'utf8')
      await writeFile(path.join(MARKS, 'expired', 'kubeconfig'), text.replaceAll(h.api.token, 'expired-0000'))
    },
    exit: 2,
    says: /401|Unauthorized|credentials/,
  },
  {name: 'a --config with spaces and quotes that does not exist', args: ['k8s', 'status', '--config', `${QUOTED_PATH}/homelab.yaml`], exit: 2, says: /config file \/tmp\/no such dir\/it's "quoted"\/homelab\.yaml \(from --config\) does not exist/, fix: /pass the path of an existing file to --config/},

  // k8s status
  {name: 'status: an unknown flag', args: ['k8s', 'status', '--watch'], exit: 2, says: /Nonexistent flag: --watch/},
  {name: 'status: an argument', args: ['k8s', 'status', 'server-1'], exit: 2, says: /k8s status takes no arguments, got "server-1"/},

  // k8s plan generate
  {name: 'plan: a version that is $(id)', args: gen('--to', '$(id)'), exit: 2, says: /"\$\(id\)" is not a k3s version/, fix: VERSION_FIX},
  {name: 'plan: a version with |touch (offline)', args: gen('--to', `${TO}|touch ${mark('plan')}`, '--offline'), exit: 2, says: NOT_A_VERSION, creates: mark('plan')},
  {name: 'plan: an unknown channel', args: gen('--to', 'bleeding-edge'), exit: 2, says: /has no channel "bleeding-edge"/},
  {name: 'plan: a namespace that is not a name', args: gen('--to', TO, '--namespace', 'Bad_Namespace!'), exit: 2, says: /--namespace "Bad_Namespace!" is not a valid name/, fix: /e\.g\. --namespace system-upgrade/},
  {name: 'plan: an image with ;touch', args: gen('--to', TO, '--image', `rancher/k3s-upgrade;touch ${mark('image')}`), exit: 2, says: /--image ".*" is not an image name/, creates: mark('image')},
  {name: 'plan: a downgrade', args: gen('--to', 'v1.31.3+k3s1'), exit: 3, shape: 'list', says: /node agent-1 runs v1\.31\.4\+k3s1; v1\.31\.3\+k3s1 would be a downgrade/, fix: /pick a target of at least v1\.31\.4\+k3s1/},
  {name: 'plan: --to twice', args: gen('--to', TO, '--to', 'v1.31.6+k3s1'), exit: 2, says: /--to can only be specified once/},
  {name: 'plan: --offline with --check-cluster', args: gen('--to', TO, '--offline', '--check-cluster'), exit: 2, says: /cannot also be provided when using/},
  {name: 'plan: --out in a directory that does not exist', args: gen('--to', TO, '--out', `${QUOTED_PATH}/plans.yaml`), exit: 2, says: /cannot write \/tmp\/no such dir\/it's "quoted"\/plans\.yaml/, fix: /pass --out a writable path/},
  {name: 'plan: a YAML syntax error', args: gen('--to', TO), yaml: sub('context: homelab-sim', 'context: [homelab-sim'), exit: 2, says: /homelab\.yaml:\d+:\d+: YAML syntax error/, fix: YAML_FIX},

  // k8s rollback
  {name: 'rollback: no run to roll back', args: ['k8s', 'rollback', '--yes'], exit: 2, says: /there is no run to roll back/, fix: /name one: homelab k8s rollback <run id>/},
  {name: 'rollback: two run ids', args: ['k8s', 'rollback', 'run-a', 'run-b', '--yes'], exit: 2, says: /Unexpected argument: run-b/},
  {name: 'rollback: no --yes under CI', args: ['k8s', 'rollback'], exit: 2, says: /refusing to roll back without confirmation/, fix: /pass --yes/},
  {name: 'rollback: an unknown key in homelab.yaml', args: ['k8s', 'rollback', '--yes'], yaml: (text) => `${text}rollback: {force: true}\n`, exit: 2, says: /rollback: unknown key/},
  {name: 'rollback: a run id that is a path', args: ['k8s', 'rollback', '../../../etc/passwd', '--yes'], exit: 2, says: /not a run id: "\.\.\/\.\.\/\.\.\/etc\/passwd"/, fix: /a run id looks like/},
  {name: 'rollback: a run id that is $(…)', args: ['k8s', 'rollback', `$(touch ${mark('rollback')})`, '--yes'], exit: 2, says: /not a run id/, creates: mark('rollback')},
  {name: 'rollback: a run that does not exist', args: ['k8s', 'rollback', '20250514-103012-3f9a1c', '--yes'], exit: 2, says: /no run journal at/},
]

/** The node commands pre-flight runs (read-only): sudo's own check (kubeadm), the reads as root (the .skip manifests listed, the images dir and registries.yaml read), the service manager asked what it runs, the binary's package owner. */
const READ_ONLY: RegExp[] = [
  /^sudo -n -- true$/,
  // The probe's reads as root (the .skip files, the image dir, registries.yaml), under one sudo.
  new RegExp(`^sudo -n -- sh -c ${AS_ROOT_PROBE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} homelab homelab-probe-[0-9a-f]{16} none `),
  /^(?:sudo -n -- )?systemctl (?:--version|show|is-active|is-enabled|status|cat|list-unit-files)\b/,
  /^(?:sudo -n -- )?(?:rc-service \S+ (?:status|--exists)|rc-status|rc-update show)\b/,
  // Who owns the binary (a node whose binary no package installed has a dpkg that says so).
  /^dpkg -S /,
]

interface NodeMark {
  commands: number
  service: number
  binary: {ino: number; size: number; mtimeMs: number}
}

async function nodeMarks(homelab: Homelab): Promise<Map<string, NodeMark>> {
  const marks = new Map<string, NodeMark>()
  for (const {spec, fixture} of homelab.nodes) {
    const {ino, size, mtimeMs} = await stat(fixture.binaryPath)
    marks.set(spec.name, {commands: (await readCommandLog(fixture)).length, service: (await readServiceLog(fixture)).length, binary: {ino, size, mtimeMs}})
  }
  return marks
}

/** Nothing but read-only pre-flight on any node since `before`: no other command, no service started or stopped, the binary not touched. */
async function assertNodesUntouched(homelab: Homelab, before: Map<string, NodeMark>): Promise<void> {
  for (const {spec, fixture} of homelab.nodes) {
    const was = before.get(spec.name) as NodeMark
    const commands = (await readCommandLog(fixture)).slice(was.commands).map((e) => `${e.tool} ${e.argv.join(' ')}`)
    const changing = commands.filter((line) => !READ_ONLY.some((re) => re.test(line)))
    assert.deepEqual(changing, [], `${spec.name} ran more than read-only pre-flight`)
    // Calls of systemctl/rc-service are read-only above; outcomes (`service`) and the binary's own lines (`k3s`) mean a restart.
    const restarts = (await readServiceLog(fixture)).slice(was.service).filter((e) => e.source === 'service' || e.source === 'k3s')
    assert.deepEqual(restarts, [], `${spec.name}'s service was started or stopped`)
    const {ino, size, mtimeMs} = await stat(fixture.binaryPath)
    assert.deepEqual({ino, size, mtimeMs}, was.binary, `${spec.name}'s binary was replaced`)
  }
}

/** The error: one line with the fix, or pre-flight's list; the problem named either way. */
function assertError(stderr: string, c: Case): void {
  const lines = stderr.trimEnd().split('\n').filter((line) => !line.startsWith('warning: '))
  assert.doesNotMatch(stderr, /\n\s+at |Error: |›/, 'no stack, no oclif banner')
  assert.match(lines[0] ?? '', /^homelab: \S/, 'the error starts with "homelab: "')
  const text = lines.join('\n')
  assert.match(text, c.says)
  if ((c.shape ?? 'line') === 'line') {
    assert.equal(lines.length, 1, 'one line')
    assert.match(lines[0], /\(fix: .+\)$/, 'ends with the fix')
  } else {
    assert.match(lines[0], /:$/, 'a list of problems follows')
    assert.ok(lines.slice(1).every((line) => line.startsWith('  ')), 'the problems and the fix are indented under the first line')
    assert.match(text, /^ {2}- /m, 'each problem on a line of its own')
    assert.match(lines.at(-1) ?? '', /^ {2}fix: \S/, 'the fix last')
  }
  assert.match(text, c.fix ?? /fix: \S/)
}

describe('bad input: exit 2 or 3, the problem and the fix, nothing written, nothing run but read-only pre-flight', () => {
  let homelab: Homelab
  let saved: string
  let stop: (() => Promise<void>) | undefined
  before(async () => {
    assert.ok(existsSync(path.join(REPO_ROOT, 'dist', 'commands', '_cli', 'run-cli.js')), 'the CLI is not built: run `npm run build` first')
    homelab = await lab((fn) => (stop = fn))
    saved = await readFile(homelab.configPath, 'utf8')
  })
  after(() => stop?.())

  test('the table has at least 40 cases', () => assert.ok(CASES.length >= 40, String(CASES.length)))

  for (const c of CASES) {
    test(`${c.name}: homelab ${c.args.join(' ')}`, async () => {
      await c.setup?.(homelab)
      await writeFile(homelab.configPath, c.yaml ? c.yaml(saved, homelab) : saved)
      const writes = homelab.api.audit.writes().length
      const k3sLog = homelab.api.k3sLog.length
      const nodes = await nodeMarks(homelab)
      try {
        const run = await homelab.cli(c.args, {env: {CI: 'true', NO_COLOR: '1'}, timeoutMs: 30_000})
        assert.equal(run.exitCode, c.exit, `exit ${run.exitCode}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`)
        assertError(run.stderr, c)
        const written = homelab.api.audit.writes().slice(writes)
        assert.deepEqual(written, [], `the API was written:\n${describeWrites(written)}`)
        assert.deepEqual(homelab.api.k3sLog.slice(k3sLog), [], 'a k3s process started or stopped')
        await assertNodesUntouched(homelab, nodes)
        if (c.creates) assert.equal(existsSync(c.creates), false, `${c.creates} exists: the shell ran part of the input`)
      } finally {
        await writeFile(homelab.configPath, saved)
      }
    })
  }

  test('afterwards every node still runs and holds the version it started with, none cordoned', async () => {
    for (const {spec, fixture} of homelab.nodes) {
      const node = homelab.api.nodes.get(spec.name)
      assert.equal(node?.status?.nodeInfo?.kubeletVersion, FROM, spec.name)
      assert.notEqual(node?.spec?.unschedulable, true, `${spec.name} cordoned`)
      assert.equal(await currentBinaryVersion(fixture), FROM, `${spec.name} on disk`)
    }
    assert.deepEqual(homelab.api.audit.writes(), [], describeWrites(homelab.api.audit.writes()))
  })
})
