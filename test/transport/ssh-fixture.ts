/**
 * Shared set-up for the SSH tests: a temp root with client keys, simulated nodes (a directory
 * with fakebin/ and env, served by OpenSSH or the in-process server), and transports aimed at
 * them. Everything started here is stopped by `cleanup()`.
 */
import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir, userInfo} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'
import {resolveSshTarget, type ExplicitSshSettings} from '../../src/transport/ssh-config.js'
import {SshTransport, type SshTransportOptions} from '../../src/transport/ssh-transport.js'
import {startSshNode as startInproc} from '../sim/inproc-ssh-server.js'
import {findSshd, killTree, startSshNode as startOpenssh, type SshNode} from '../sim/sshd.js'

const execFileP = promisify(execFile)

/** Skip reason when OpenSSH tests cannot run here; under CI they must run (and fail). */
export function opensshSkipReason(): string | false {
  if (findSshd()) return false
  return process.env.CI === 'true' ? false : 'OpenSSH sshd is not installed (install openssh-server; under CI=true this fails)'
}

/** Records its argv (NUL-separated, one record per line of `\x1e`) and runs what follows `--`. */
const FAKE_SUDO = `#!/bin/sh
printf '%s\\0' "$@" >> "$HOMELAB_SIM_ROOT/state/sudo.argv"
printf '\\036' >> "$HOMELAB_SIM_ROOT/state/sudo.argv"
if [ -e "$HOMELAB_SIM_ROOT/state/sudo-needs-password" ]; then
  echo "sudo: a password is required" >&2
  exit 1
fi
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
[ "$1" = "--" ] && shift
HOMELAB_SIM_PRIVILEGED=1 exec "$@"
`

export interface SimNode {
  node: SshNode
  dir: string
  /** argv of every fake sudo call. */
  sudoCalls(): string[][]
}

export class SshFixture {
  readonly root = mkdtempSync(join(tmpdir(), 'homelab-ssh-'))
  readonly home = join(this.root, 'home')
  readonly keyDir = join(this.root, 'keys')
  readonly knownHosts = join(this.home, '.ssh', 'known_hosts')
  private readonly nodes: SshNode[] = []
  private readonly transports: SshTransport[] = []
  private readonly processes: ChildProcess[] = []

  constructor() {
    mkdirSync(this.home)
    mkdirSync(this.keyDir)
  }

  async key(name: string, passphrase = ''): Promise<{path: string; pub: string}> {
    const path = join(this.keyDir, name)
    // Few KDF rounds: decrypting in JS is slow and the strength is irrelevant here.
    if (!existsSync(path)) await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-a', '2', '-N', passphrase, '-C', `test-${name}`, '-f', path])
    return {path, pub: readFileSync(`${path}.pub`, 'utf8').trim()}
  }

  async node(
    name: string,
    options: {address: string; kind?: 'openssh' | 'inproc'; authorizedKeys: string[]; logLevel?: 'VERBOSE' | 'DEBUG1'},
  ): Promise<SimNode> {
    const dir = join(this.root, 'nodes', name)
    mkdirSync(join(dir, 'fakebin'), {recursive: true})
    mkdirSync(join(dir, 'state'), {recursive: true})
    writeFileSync(join(dir, 'fakebin', 'sudo'), FAKE_SUDO, {mode: 0o755})
    writeFileSync(
      join(dir, 'env'),
      [`PATH=${join(dir, 'fakebin')}:/usr/local/bin:/usr/bin:/bin`, `HOMELAB_SIM_NODE=${name}`, 'HOMELAB_SIM_ROLE=server', `HOMELAB_SIM_ROOT=${dir}`, ''].join('\n'),
    )
    const start = options.kind === 'inproc' ? startInproc : startOpenssh
    const node = await start({name, dir, address: options.address, authorizedKey: options.authorizedKeys, ...(options.logLevel ? {logLevel: options.logLevel} : {})})
    this.nodes.push(node)
    return {
      node,
      dir,
      sudoCalls: () => {
        const file = join(dir, 'state', 'sudo.argv')
        if (!existsSync(file)) return []
        return readFileSync(file, 'utf8')
          .split('\x1e')
          .filter((r) => r !== '')
          .map((r) => r.split('\0').slice(0, -1))
      },
    }
  }

  trust(node: SshNode, file = this.knownHosts): void {
    mkdirSync(join(file, '..'), {recursive: true})
    writeFileSync(file, `${node.knownHostsLine}\n`, {flag: 'a'})
  }

  transport(
    node: SshNode,
    explicit: ExplicitSshSettings,
    options: Omit<Partial<SshTransportOptions>, 'target'> & {sshConfigText?: string; host?: string} = {},
  ): SshTransport {
    const target = resolveSshTarget({
      host: options.host ?? node.host,
      explicit: {port: node.port, user: node.user, knownHostsFiles: [this.knownHosts], ...explicit},
      sshConfigText: options.sshConfigText,
      localUser: userInfo().username,
      home: this.home,
    })
    const t = new SshTransport({node: node.name, env: {}, home: this.home, killGraceMs: 500, ...options, target})
    this.transports.push(t)
    return t
  }

  /** A real ssh-agent on a socket in the temp root, holding `keyPath`. */
  async agent(keyPath: string): Promise<string> {
    const sock = join(this.root, 'agent.sock')
    const agent = spawn('ssh-agent', ['-D', '-a', sock], {stdio: 'ignore'})
    this.processes.push(agent)
    const deadline = Date.now() + 5000
    while (!existsSync(sock) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    if (!existsSync(sock)) throw new Error('ssh-agent did not create its socket within 5 s')
    await execFileP('ssh-add', [keyPath], {env: {SSH_AUTH_SOCK: sock, PATH: process.env.PATH}})
    return sock
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.transports.map((t) => t.close()))
    const stops = await Promise.allSettled(this.nodes.map((n) => n.stop()))
    await Promise.allSettled(this.processes.map((p) => killTree(p)))
    rmSync(this.root, {recursive: true, force: true})
    const failed = stops.find((s) => s.status === 'rejected')
    if (failed) throw (failed as PromiseRejectedResult).reason
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return existsSync(`/proc/${pid}/stat`) ? !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8')) : true
  } catch {
    return false
  }
}

export async function waitGone(pid: number, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  return !isAlive(pid)
}

export async function waitForFile(path: string, ms = 10_000): Promise<string> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (existsSync(path)) {
      const text = readFileSync(path, 'utf8')
      if (text.endsWith('\n')) return text
    }
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`${path} did not appear within ${ms} ms`)
}
