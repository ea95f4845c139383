/**
 * A simulated node's SSH server: a real OpenSSH `sshd` on a loopback address, with its own
 * host key and config under `<node dir>/sshd/`. Works as root and as a normal user (a
 * non-root sshd can only log in the user it runs as, which is the user the product connects
 * as). Every session gets the node's env (PATH with fakebin first, HOMELAB_SIM_*) through
 * `SetEnv`, which sshd applies after its own defaults, so the node's PATH wins.
 *
 * The env is read when sshd starts; sshd hands its config to each connection, so a change of
 * the env file reaches new connections only after `restart()`.
 */
import {execFile, spawn, type ChildProcess} from 'node:child_process'
import {existsSync, readdirSync, readFileSync} from 'node:fs'
import {chmod, mkdir, readFile, writeFile} from 'node:fs/promises'
import {createServer, connect} from 'node:net'
import {userInfo} from 'node:os'
import {join} from 'node:path'
import {promisify} from 'node:util'

const execFileP = promisify(execFile)

export interface SshNodeOptions {
  name: string
  /** The node's directory (see node-fixture.ts); server files go to `<dir>/sshd/`. */
  dir: string
  /** A loopback address: 127.x.y.z or ::1. Default 127.0.0.1. */
  address?: string
  /** Default: a free port. */
  port?: number
  /** Public key line(s) allowed to log in (`ssh-ed25519 AAAA... comment`, options allowed). */
  authorizedKey: string | readonly string[]
  /** Session environment. Default: the KEY=VALUE lines of `<dir>/env` (if it exists). */
  env?: Readonly<Record<string, string>>
  /** sshd LogLevel (the log is `<dir>/sshd/sshd.log`). Default VERBOSE. */
  logLevel?: 'QUIET' | 'ERROR' | 'INFO' | 'VERBOSE' | 'DEBUG1' | 'DEBUG2' | 'DEBUG3'
  /** Bound for sshd to answer with its banner. Default 10 s. */
  startTimeoutMs?: number
}

export interface SshNode {
  readonly name: string
  /** Address to dial, also the known_hosts name (with the port when not 22). */
  readonly host: string
  readonly port: number
  /** The user sessions run as (the user this process runs as). */
  readonly user: string
  /** `ssh-ed25519 AAAA...`: the host key, for appendKnownHost(file, host, port, hostKeyLine). */
  readonly hostKeyLine: string
  /** `[host]:port ssh-ed25519 AAAA...`: a ready known_hosts line. */
  readonly knownHostsLine: string
  readonly logFile: string
  /** Which implementation serves this node. */
  readonly kind: 'openssh' | 'inproc'
  /** Fault injection (the in-process server only; see SshFaults in inproc-ssh-server.ts). */
  readonly faults?: import('./inproc-ssh-server.js').SshFaults
  /** Stops and starts again on the same address, port and host key (re-reads the env file). */
  restart(): Promise<void>
  /** Kills sshd and every process it started (sessions included) and waits for them. */
  stop(): Promise<void>
}

/** Thrown when no sshd binary exists; tests turn it into a skip, or a failure under CI. */
export class SshdNotInstalledError extends Error {
  constructor() {
    super('OpenSSH sshd is not installed (looked for sshd in /usr/sbin, /usr/local/sbin, /sbin, /usr/bin and PATH); install openssh-server, or use the in-process server (test/sim/inproc-ssh-server.ts)')
    this.name = 'SshdNotInstalledError'
  }
}

export function findSshd(): string | undefined {
  const candidates = ['/usr/sbin/sshd', '/usr/local/sbin/sshd', '/sbin/sshd', '/usr/bin/sshd']
  for (const dir of (process.env.PATH ?? '').split(':')) if (dir.startsWith('/')) candidates.push(join(dir, 'sshd'))
  return candidates.find((c) => existsSync(c))
}

function findSftpServer(): string {
  const candidates = [
    '/usr/lib/openssh/sftp-server',
    '/usr/libexec/openssh/sftp-server',
    '/usr/libexec/sftp-server',
    '/usr/lib/ssh/sftp-server',
    '/usr/local/libexec/sftp-server',
  ]
  // sshd's built-in server needs no binary: the fallback where distributions put it elsewhere.
  return candidates.find((c) => existsSync(c)) ?? 'internal-sftp'
}

/** KEY=VALUE lines; blank lines and # comments ignored. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue
    const eq = line.indexOf('=')
    if (eq <= 0) throw new Error(`env file: not a KEY=VALUE line: ${JSON.stringify(line)}`)
    env[line.slice(0, eq)] = line.slice(eq + 1)
  }
  return env
}

export async function readNodeEnv(dir: string, env?: Readonly<Record<string, string>>): Promise<Record<string, string>> {
  if (env) return {...env}
  const file = join(dir, 'env')
  return existsSync(file) ? parseEnvFile(await readFile(file, 'utf8')) : {}
}

export function assertLoopback(address: string): void {
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address) && address !== '::1') {
    throw new Error(`simulated SSH nodes listen on loopback only, not ${address}`)
  }
}

/** A port that was free a moment ago on this address (the caller retries if it is taken). */
export function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, address, () => {
      const {port} = server.address() as {port: number}
      server.close(() => resolve(port))
    })
  })
}

/** Resolves once something on host:port sends an SSH banner; bounded by deadline. */
export async function waitForBanner(host: string, port: number, deadline: number, alive: () => string | undefined): Promise<void> {
  let lastError = 'no answer'
  while (Date.now() < deadline) {
    const dead = alive()
    if (dead) throw new Error(dead)
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect({host, port})
      let data = ''
      const done = (result: boolean, why?: string) => {
        if (why) lastError = why
        clearTimeout(timer)
        sock.destroy()
        resolve(result)
      }
      const timer = setTimeout(() => done(false, 'no banner within 1 s'), Math.max(1, Math.min(1000, deadline - Date.now())))
      sock.on('data', (chunk) => {
        data += chunk.toString('latin1')
        if (/^SSH-2\.0-/m.test(data)) done(true)
      })
      sock.on('error', (e) => done(false, e.message))
      sock.on('close', () => done(false, 'closed before the banner'))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`no SSH banner from ${host}:${port} (${lastError})`)
}

function configValue(value: string, what: string): string {
  if (/["\n\r\0]/.test(value)) throw new Error(`sshd config: ${what} cannot contain a double quote or a newline: ${JSON.stringify(value)}`)
  return `"${value}"`
}

/** Pids of every process below `root` (Linux /proc; elsewhere `ps`). */
export function descendants(root: number): number[] {
  const parents = new Map<number, number[]>()
  const add = (pid: number, ppid: number) => {
    const list = parents.get(ppid) ?? []
    list.push(pid)
    parents.set(ppid, list)
  }
  if (existsSync('/proc/self/stat')) {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
        // The command name (2nd field) may contain spaces and parens: parse after the last ')'.
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
        add(Number(entry), ppid)
      } catch {
        // the process ended while we looked
      }
    }
  }
  const out: number[] = []
  const queue = [root]
  while (queue.length > 0) {
    for (const child of parents.get(queue.shift()!) ?? []) {
      out.push(child)
      queue.push(child)
    }
  }
  return out
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    // A zombie still answers kill(0); it is gone for our purposes.
    if (existsSync(`/proc/${pid}/stat`)) {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
    }
    return true
  } catch {
    return false
  }
}

/** Waits for `promise` at most `ms` (without a timer left behind to hold the process open). */
export async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([promise, new Promise((r) => (timer = setTimeout(r, ms)))])
  clearTimeout(timer)
}

/** TERM the tree, wait (bounded), KILL what is left, wait again. */
export async function killTree(child: ChildProcess, graceMs = 2000): Promise<void> {
  const pid = child.pid
  if (pid === undefined) return
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once('exit', () => r()))
  const tree = [pid, ...descendants(pid)]
  const signal = (sig: NodeJS.Signals) => {
    for (const p of tree) {
      try {
        process.kill(p, sig)
      } catch {
        // already gone
      }
    }
  }
  const waitGone = async (ms: number) => {
    const deadline = Date.now() + ms
    while (Date.now() < deadline && tree.some(isAlive)) await new Promise((r) => setTimeout(r, 20))
  }
  signal('SIGTERM')
  await waitGone(graceMs)
  if (tree.some(isAlive)) {
    signal('SIGKILL')
    await waitGone(graceMs)
  }
  await within(exited, graceMs)
  const left = tree.filter(isAlive)
  if (left.length > 0) throw new Error(`processes still alive after stop: ${left.join(', ')}`)
}

export async function startSshNode(options: SshNodeOptions): Promise<SshNode> {
  const sshd = findSshd()
  if (!sshd) throw new SshdNotInstalledError()
  const address = options.address ?? '127.0.0.1'
  assertLoopback(address)
  const user = userInfo().username
  const home = join(options.dir, 'sshd')
  await mkdir(home, {recursive: true, mode: 0o700})
  const hostKey = join(home, 'ssh_host_ed25519_key')
  if (!existsSync(hostKey)) {
    await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `homelab-sim-${options.name}`, '-f', hostKey])
  }
  await chmod(hostKey, 0o600) // sshd refuses a host key others can read
  const [keyType, keyB64] = (await readFile(`${hostKey}.pub`, 'utf8')).trim().split(/\s+/)
  const hostKeyLine = `${keyType} ${keyB64}`
  const keys = typeof options.authorizedKey === 'string' ? [options.authorizedKey] : options.authorizedKey
  await writeFile(join(home, 'authorized_keys'), keys.map((k) => `${k.trim()}\n`).join(''), {mode: 0o600})
  const logFile = join(home, 'sshd.log')
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) {
    // A root sshd insists on its privilege-separation directory (normally made at boot).
    await mkdir('/run/sshd', {recursive: true, mode: 0o755})
  }

  let port = options.port ?? 0
  let child: ChildProcess | undefined
  const listen = address.includes(':') ? (p: number) => `[${address}]:${p}` : (p: number) => `${address}:${p}`

  const writeConfig = async (): Promise<string> => {
    // The node's own HOME: bash run by sshd reads ~/.bashrc, and the runner's (pyenv init, say)
    // would add its noise to every command's stderr, racing between parallel sessions.
    const env = {HOME: options.dir, ...(await readNodeEnv(options.dir, options.env))}
    const setEnv = Object.entries(env).map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`sshd config: bad env name ${JSON.stringify(k)}`)
      return configValue(`${k}=${v}`, `env ${k}`)
    })
    const lines = [
      `ListenAddress ${listen(port)}`,
      `HostKey ${configValue(hostKey, 'host key path')}`,
      `PidFile ${configValue(join(home, 'sshd.pid'), 'pid file path')}`,
      `AuthorizedKeysFile ${configValue(join(home, 'authorized_keys'), 'authorized_keys path')}`,
      'UsePAM no',
      'StrictModes no', // test dirs live under /tmp with whatever modes the runner gives them
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      `AllowUsers ${user}`,
      'AllowTcpForwarding yes',
      'X11Forwarding no',
      'PrintMotd no',
      'PrintLastLog no',
      'UseDNS no',
      'PermitUserEnvironment no',
      `LogLevel ${options.logLevel ?? 'VERBOSE'}`,
      `Subsystem sftp ${findSftpServer()}`,
      ...(setEnv.length > 0 ? [`SetEnv ${setEnv.join(' ')}`] : []),
      '',
    ]
    const file = join(home, 'sshd_config')
    await writeFile(file, lines.join('\n'), {mode: 0o600})
    return file
  }

  const launch = async (): Promise<void> => {
    const fixedPort = port !== 0
    for (let attempt = 1; ; attempt++) {
      if (!fixedPort) port = await freePort(address)
      const config = await writeConfig()
      await execFileP(sshd, ['-t', '-f', config]).catch((error: {stderr?: string}) => {
        throw new Error(`sshd rejects the generated config ${config}: ${error.stderr ?? error}`)
      })
      const logStart = existsSync(logFile) ? readFileSync(logFile).length : 0
      // A clean environment: nothing from the test runner leaks into sshd (or its sessions).
      const proc = spawn(sshd, ['-D', '-f', config, '-E', logFile], {stdio: 'ignore', env: {PATH: '/usr/sbin:/usr/bin:/sbin:/bin'}})
      child = proc
      let exitInfo: string | undefined
      proc.once('exit', (code, sig) => {
        exitInfo = `sshd for ${options.name} exited (${code ?? sig}) before it was ready`
      })
      const newLog = () => (existsSync(logFile) ? readFileSync(logFile).subarray(logStart).toString('utf8') : '')
      try {
        await waitForBanner(address, port, Date.now() + (options.startTimeoutMs ?? 10_000), () =>
          exitInfo ? `${exitInfo}: ${newLog().trim()}` : undefined,
        )
        return
      } catch (error) {
        await killTree(proc).catch(() => {})
        const bindFailed = /Bind to port|Cannot bind any address|Address already in use/.test(newLog())
        if (fixedPort || !bindFailed || attempt >= 5) throw error
      }
    }
  }

  const stop = async () => {
    const proc = child
    child = undefined
    if (proc) await killTree(proc)
  }

  await launch()
  const hostForKnownHosts = port === 22 ? address : `[${address}]:${port}`
  return {
    name: options.name,
    host: address,
    get port() {
      return port
    },
    user,
    hostKeyLine,
    knownHostsLine: `${hostForKnownHosts} ${hostKeyLine}`,
    logFile,
    kind: 'openssh',
    async restart() {
      await stop()
      await launch()
    },
    stop,
  }
}
