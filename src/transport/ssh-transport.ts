import {connect as netConnect} from 'node:net'
import {constants as fsConstants, createReadStream, existsSync} from 'node:fs'
import {randomBytes} from 'node:crypto'
import {access, readFile} from 'node:fs/promises'
import {homedir} from 'node:os'
import {Readable, type Duplex} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import ssh2 from 'ssh2'
import type {
  AgentAuthMethod,
  BaseAgent,
  Client as ClientType,
  ClientChannel,
  ConnectConfig,
  ParsedKey,
  PublicKeyAuthMethod,
  SFTPWrapper,
} from 'ssh2'
import {
  AbortedError,
  CommandError,
  ConnectionError,
  ExitCode,
  HomelabError,
  HostKeyError,
  TimeoutError,
} from '../errors.js'
import {appendKnownHost, checkHostKey, hostKeyLine, keyBlobType, knownHostsName, knownKeyTypes, sha256Fingerprint} from './known-hosts.js'
import {commandFailure} from './command-failure.js'
import {quoteArg, quoteArgv} from './quote.js'
import type {ResolvedSshTarget, SshEndpoint} from './ssh-config.js'
import type {ExecOptions, ExecResult, PutFileOptions, Transport} from './types.js'

const {Client, utils} = ssh2
// BaseAgent is a runtime class in ssh2 but typed abstract; take the constructor from the module.
const BaseAgentClass = (ssh2 as unknown as {BaseAgent: new () => BaseAgent}).BaseAgent
const createAgent = (ssh2 as unknown as {createAgent: (path: string) => BaseAgent}).createAgent

export type Become = 'sudo' | 'none'

export type SshTransportEvent =
  | {type: 'connecting'; node: string; host: string; port: number; via: string[]}
  | {type: 'connected'; node: string; host: string; port: number}
  | {type: 'disconnected'; node: string; reason?: string}
  | {type: 'host-key-added'; node: string; host: string; port: number; fingerprint: string; file: string}
  | {type: 'identity-skipped'; node: string; path: string; reason: string}

export interface SshTransportOptions {
  /** Node name, for messages. */
  node: string
  /** Where and how to connect: see resolveSshTarget(). */
  target: ResolvedSshTarget
  /** How privileged commands run: `sudo -n --` or as is. Default sudo. */
  become?: Become
  /** OpenSSH's `accept-new`: trust and record an unknown host key; a changed key is refused anyway. */
  acceptNewHostKeys?: boolean
  /** Environment for SSH_AUTH_SOCK and the passphrase variable. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>
  /** Variable holding the passphrase of encrypted identity files. Default HOMELAB_SSH_PASSPHRASE. */
  passphraseEnvVar?: string
  /** Asked for an encrypted key's passphrase when the variable is unset (the CLI prompts on a TTY). */
  askPassphrase?: (keyPath: string) => Promise<string | undefined>
  /** Bound for TCP connect + handshake + auth, per hop. Default: ssh config ConnectTimeout, else 20 s. */
  connectTimeoutMs?: number
  /** Default: ssh config ServerAliveInterval, else 15 s. 0 disables. */
  keepaliveIntervalMs?: number
  /** Default: ssh config ServerAliveCountMax, else 3. */
  keepaliveCountMax?: number
  /** After a timeout/abort the command gets TERM, then KILL after this long. Default 2 s. */
  killGraceMs?: number
  /** Channels open at once on the connection (OpenSSH allows 10 by default). Default 8. */
  maxSessions?: number
  /** How the user's CLI spells accept-new, for hints. Default `--accept-new-host-keys`. */
  acceptNewFlag?: string
  /** Home directory for `~` in hints. Default os.homedir(). */
  home?: string
  onEvent?: (event: SshTransportEvent) => void
}

const DEFAULT_HOST_KEY_ALGOS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
]

/** Known key types first, so a host with several keys shows us the one we know (as OpenSSH does). */
export function hostKeyAlgorithms(knownTypes: readonly string[]): string[] {
  const preferred: string[] = []
  for (const type of knownTypes) {
    const algos = type === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [type]
    for (const a of algos) if (DEFAULT_HOST_KEY_ALGOS.includes(a) && !preferred.includes(a)) preferred.push(a)
  }
  return [...preferred, ...DEFAULT_HOST_KEY_ALGOS.filter((a) => !preferred.includes(a))]
}

/** The command as the user would type it; privileged commands go through `sudo -n --`. */
export function displayCommand(argv: readonly string[], privileged: boolean, become: Become): string {
  // -n: fail at once ("a password is required") instead of waiting for a password nobody types.
  return privileged && become === 'sudo' ? `sudo -n -- ${quoteArgv(argv)}` : quoteArgv(argv)
}

/**
 * What is sent to sshd for one command. A small sh wrapper replaces the login shell (`exec`,
 * so it leads the session's process group) and first writes `<marker><pid>` on stderr, which
 * the transport strips. With that pid a timeout or cancel can stop the whole group from a
 * second channel: sshd refuses "signal" requests for root logins (no privilege separation
 * after auth), and closing a channel without a pty does not stop the command.
 */
export function remoteCommandLine(argv: readonly string[], privileged: boolean, become: Become, marker: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(marker)) throw new TypeError('marker must be a plain word')
  const inner = privileged && become === 'sudo' ? ['sudo', '-n', '--', ...argv] : [...argv]
  return `exec /bin/sh -c ${quoteArg(`echo "${marker}$$" >&2; "$@"`)} homelab ${quoteArgv(inner)}`
}

/** Stops a process group from another channel; through sudo when the command ran as root. */
export function killCommandLine(pid: number, signal: 'TERM' | 'KILL', privileged: boolean, become: Become): string {
  const argv = ['/bin/sh', '-c', `kill -s ${signal} -- -"$1" 2>/dev/null || kill -s ${signal} "$1"`, 'homelab-kill', String(pid)]
  return privileged && become === 'sudo' ? `sudo -n -- ${quoteArgv(argv)}` : quoteArgv(argv)
}

export {sudoHint} from './command-failure.js'

function abortReason(signal: AbortSignal | undefined, what: string): AbortedError {
  const reason = signal?.reason
  return reason instanceof AbortedError ? reason : new AbortedError(`cancelled: ${what}`, {cause: reason})
}

/** Runs fn with at most `limit` at once. */
class Semaphore {
  private active = 0
  private readonly waiting: Array<() => void> = []
  constructor(private readonly limit: number) {}
  async use<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.active >= this.limit) {
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          signal?.removeEventListener('abort', onAbort)
          resolve()
        }
        const onAbort = () => {
          const i = this.waiting.indexOf(go)
          if (i !== -1) this.waiting.splice(i, 1)
          reject(abortReason(signal, 'waiting for a free SSH session'))
        }
        signal?.addEventListener('abort', onAbort, {once: true})
        this.waiting.push(go)
      })
    }
    this.active++
    try {
      return await fn()
    } finally {
      this.active--
      this.waiting.shift()?.()
    }
  }
}

/** An agent that only offers the keys of the configured identity files (IdentitiesOnly). */
function filteredAgent(inner: BaseAgent, allowed: Buffer[]): BaseAgent {
  const agent = new BaseAgentClass() as BaseAgent & Record<string, unknown>
  agent.getIdentities = (cb: (err: Error | undefined, keys?: ParsedKey[]) => void) => {
    inner.getIdentities((err, keys) => {
      if (err || !keys) return cb(err ?? undefined, keys as ParsedKey[] | undefined)
      cb(undefined, (keys as ParsedKey[]).filter((k) => allowed.some((a) => a.equals(k.getPublicSSH()))))
    })
  }
  agent.sign = (...args: unknown[]) => (inner.sign as (...a: unknown[]) => void)(...args)
  return agent
}

interface Connection {
  client: ClientType
  /** Jump-host clients, dialled first; closed with the connection. */
  hops: ClientType[]
  closed: boolean
  /** Why it closed, when it did so on its own. */
  closeReason?: string
  sftp?: Promise<SFTPWrapper>
}

function agentIdentities(agent: BaseAgent): Promise<ParsedKey[]> {
  return new Promise((resolve) => {
    // An agent that cannot be reached just offers nothing, as with ssh.
    agent.getIdentities((err, keys) => resolve(err || !keys ? [] : (keys as ParsedKey[])))
  })
}

export class SshTransport implements Transport {
  readonly node: string
  private readonly options: SshTransportOptions
  private readonly become: Become
  private readonly env: Readonly<Record<string, string | undefined>>
  private connection?: Connection
  private connecting?: Promise<Connection>
  private readonly sessions: Semaphore
  /** Decrypted keys stay in memory only, so a reconnect does not ask again. */
  private readonly keyCache = new Map<string, ParsedKey | null>()
  private closedByUser = false

  constructor(options: SshTransportOptions) {
    this.options = options
    this.node = options.node
    this.become = options.become ?? 'sudo'
    this.env = options.env ?? process.env
    this.sessions = new Semaphore(options.maxSessions ?? 8)
  }

  /** `user@host:port`, via hops, for messages. */
  describe(): string {
    const t = this.options.target
    const hops = t.proxyJump.map((h) => `${h.user}@${h.host}:${h.port}`)
    return `${t.user}@${t.host}:${t.port}${hops.length > 0 ? ` via ${hops.join(' -> ')}` : ''}`
  }

  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const command = displayCommand(argv, options.privileged === true, this.become)
    const signal = options.signal
    if (signal?.aborted) throw abortReason(signal, command)
    return this.sessions.use(async () => {
      const conn = await this.connect(signal)
      return this.runChannel(conn, argv, command, options)
    }, signal)
  }

  async run(argv: readonly string[], options: ExecOptions = {}): Promise<string> {
    const result = await this.exec(argv, options)
    if (result.exitCode === 0) return result.stdout
    throw commandFailure(this.node, argv, result, options.privileged && this.become === 'sudo' ? this.options.target.user : undefined)
  }

  async putFile(source: string | Buffer, remotePath: string, options: PutFileOptions = {}): Promise<void> {
    const signal = options.signal
    if (signal?.aborted) throw abortReason(signal, `copy to ${remotePath}`)
    if (typeof source === 'string') {
      // Before anything is created on the node: a missing local file must not leave an empty remote one.
      await access(source, fsConstants.R_OK).catch((error: Error) => {
        throw new HomelabError(`cannot read ${source}: ${error.message}`, {cause: error, hint: 'check the local file exists and is readable'})
      })
    }
    await this.sessions.use(async () => {
      const conn = await this.connect(signal)
      const sftp = await this.sftp(conn)
      const input = typeof source === 'string' ? createReadStream(source) : Readable.from([source])
      const output = sftp.createWriteStream(remotePath, {flags: 'w', ...(options.mode === undefined ? {} : {mode: options.mode})})
      try {
        await pipeline(input, output, {signal})
        // The server applies its umask at open; the caller asked for this exact mode.
        if (options.mode !== undefined) await new Promise<void>((resolve, reject) => sftp.chmod(remotePath, options.mode!, (e) => (e ? reject(e) : resolve())))
      } catch (error) {
        if (signal?.aborted) throw abortReason(signal, `copy to ${remotePath}`)
        if (conn.closed) throw this.lostError(conn, `copying to ${remotePath}`, error)
        throw sftpError(error, this.node, this.options.target.user, remotePath, typeof source === 'string' ? source : undefined)
      }
    }, signal)
  }

  async close(): Promise<void> {
    this.closedByUser = true
    const pending = this.connecting
    this.connecting = undefined
    const conn = this.connection ?? (await pending?.catch(() => undefined))
    this.connection = undefined
    if (conn) await closeConnection(conn)
    this.closedByUser = false
  }

  // --- connection ---------------------------------------------------------------------------

  private async connect(signal?: AbortSignal): Promise<Connection> {
    if (this.connection && !this.connection.closed) return this.connection
    if (!this.connecting) {
      const attempt = this.open().then(
        (conn) => {
          if (this.connecting === attempt) this.connecting = undefined
          this.connection = conn
          return conn
        },
        (error) => {
          if (this.connecting === attempt) this.connecting = undefined
          throw error
        },
      )
      this.connecting = attempt
      // Nobody may be waiting when it fails (all callers aborted): keep that from crashing.
      attempt.catch(() => {})
    }
    const connecting = this.connecting
    if (!signal) return connecting
    // A caller's abort stops its own wait; the shared attempt stays bounded by its timeout.
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(abortReason(signal, `connecting to ${this.node}`))
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, {once: true})
      connecting.then(
        (c) => {
          signal.removeEventListener('abort', onAbort)
          resolve(c)
        },
        (e) => {
          signal.removeEventListener('abort', onAbort)
          reject(e)
        },
      )
    })
  }

  private async open(): Promise<Connection> {
    const target = this.options.target
    const endpoints: SshEndpoint[] = [...target.proxyJump, target]
    this.emit({type: 'connecting', node: this.node, host: target.host, port: target.port, via: target.proxyJump.map((h) => `${h.host}:${h.port}`)})
    const clients: ClientType[] = []
    try {
      let sock: Duplex | undefined
      for (const [index, endpoint] of endpoints.entries()) {
        if (index > 0) sock = await forwardOut(clients[index - 1]!, endpoints[index - 1]!, endpoint, this.node)
        clients.push(await this.dial(endpoint, sock, index < endpoints.length - 1))
      }
    } catch (error) {
      for (const c of clients.reverse()) c.end()
      throw error
    }
    const client = clients.pop()!
    const conn: Connection = {client, hops: clients, closed: false}
    const onClose = (reason?: string) => {
      if (conn.closed) return
      conn.closed = true
      conn.closeReason = reason
      if (this.connection === conn) this.connection = undefined
      for (const hop of conn.hops) hop.end()
      if (!this.closedByUser) this.emit({type: 'disconnected', node: this.node, reason})
    }
    client.on('error', (e: Error) => onClose(e.message))
    client.on('close', () => onClose())
    for (const hop of clients) {
      hop.on('error', (e: Error) => {
        onClose(`jump host: ${e.message}`)
        client.end()
      })
      hop.on('close', () => client.end())
    }
    this.emit({type: 'connected', node: this.node, host: target.host, port: target.port})
    return conn
  }

  /** One SSH handshake + auth to `endpoint`, directly or over `sock`. */
  private async dial(endpoint: SshEndpoint, sock: Duplex | undefined, isHop: boolean): Promise<ClientType> {
    const what = `${isHop ? 'jump host ' : ''}${endpoint.user}@${endpoint.host}:${endpoint.port}${isHop ? '' : ` (node ${this.node})`}`
    const auth = await this.authMethods(endpoint)
    const known = await knownKeyTypes(endpoint.knownHostsFiles, endpoint.host, endpoint.port)
    const client = new Client()
    client.once('close', () => closedClients.add(client))
    let hostKeyFailure: Error | undefined
    let pendingAdd: Promise<void> | undefined
    let addKey: (() => Promise<void>) | undefined

    const hostVerifier = (key: Buffer, verify: (ok: boolean) => void) => {
      this.verifyHostKey(endpoint, key, known).then(
        (decision) => {
          if (decision.add) addKey = decision.add
          verify(true)
        },
        (error: Error) => {
          hostKeyFailure =
            error instanceof HomelabError
              ? error
              : new ConnectionError(`cannot check the host key of ${endpoint.host}: ${error.message}`, {
                  cause: error,
                  hint: `check that ${endpoint.knownHostsFiles.join(' and ')} can be read`,
                })
          verify(false)
        },
      )
    }

    const config: ConnectConfig = {
      host: endpoint.host,
      port: endpoint.port,
      username: endpoint.user,
      readyTimeout: this.options.connectTimeoutMs ?? endpoint.connectTimeoutMs ?? 20_000,
      keepaliveInterval: this.options.keepaliveIntervalMs ?? endpoint.keepaliveIntervalMs ?? 15_000,
      keepaliveCountMax: this.options.keepaliveCountMax ?? endpoint.keepaliveCountMax ?? 3,
      hostVerifier,
      algorithms: {serverHostKey: hostKeyAlgorithms(known) as never},
      authHandler: auth.methods,
      // Our own TCP socket with Nagle off: each command is a few small request/reply packets,
      // which Nagle and delayed ACKs would otherwise hold back (measured: ~35% per command).
      sock: sock ?? noDelaySocket(endpoint.host, endpoint.port),
    }

    return new Promise<ClientType>((resolve, reject) => {
      let settled = false
      const fail = (error: Error) => {
        if (settled) return
        settled = true
        client.end()
        reject(error)
      }
      client.once('handshake', () => {
        // Recorded only now that the server proved it holds the key (kex signature checked).
        if (addKey) pendingAdd = addKey()
      })
      client.once('ready', () => {
        Promise.resolve(pendingAdd).then(
          () => {
            if (settled) return
            settled = true
            resolve(client)
          },
          (error: Error) =>
            fail(
              new ConnectionError(`could not record the host key of ${endpoint.host} in ${endpoint.knownHostsFiles[0]}: ${error.message}`, {
                cause: error,
                hint: 'check that the known_hosts file and its directory are writable',
              }),
            ),
        )
      })
      client.once('error', (error: Error & {level?: string}) => {
        if (hostKeyFailure) return fail(hostKeyFailure)
        fail(this.connectError(error, what, endpoint, auth.tried, isHop))
      })
      client.once('close', () => fail(new ConnectionError(`${what} closed the connection during login`, {hint: `check the sshd log on ${endpoint.host}`})))
      try {
        client.connect(config)
      } catch (error) {
        fail(new ConnectionError(`cannot connect to ${what}: ${(error as Error).message}`, {cause: error}))
      }
    })
  }

  private async verifyHostKey(
    endpoint: SshEndpoint,
    key: Buffer,
    knownTypes: readonly string[],
  ): Promise<{add?: () => Promise<void>}> {
    const {host, port, knownHostsFiles} = endpoint
    const type = keyBlobType(key) ?? 'unknown'
    const fingerprint = sha256Fingerprint(key)
    const status = await checkHostKey(knownHostsFiles, host, port, type, key)
    const label = port === 22 ? host : `${host}:${port}`
    const file = knownHostsFiles[0] ?? '~/.ssh/known_hosts'
    const fileShown = this.tilde(file)
    const fileArg = fileShown.startsWith('~/') ? `~/${quoteArg(fileShown.slice(2))}` : quoteArg(fileShown)
    const keyscan = `ssh-keyscan${port === 22 ? '' : ` -p ${port}`} -t ${type.replace(/^ssh-/, '').replace(/^ecdsa-sha2-nistp\d+$/, 'ecdsa')} -H ${quoteArg(host)} >> ${fileArg}`
    switch (status) {
      case 'match':
        return {}
      case 'revoked':
        throw new ConnectionError(`host key of ${label} (${fingerprint}) is marked @revoked in known_hosts; refusing to connect`, {
          exitCode: ExitCode.preflightRefused,
          hint: `this key must not be trusted: find out why it was revoked; if the host has a new key, add it after checking its fingerprint out of band`,
        })
      case 'changed': {
        const holder = await firstFileWith(knownHostsFiles, (f) => checkHostKey(f, host, port, type, key).then((s) => s === 'changed'))
        const holderShown = this.tilde(holder ?? file)
        const fFlag = holderShown === '~/.ssh/known_hosts' ? '' : ` -f ${holderShown.startsWith('~/') ? `~/${quoteArg(holderShown.slice(2))}` : quoteArg(holderShown)}`
        throw new HostKeyError(
          label,
          fingerprint,
          'changed',
          `someone may be intercepting the connection, or ${label} was reinstalled. Check the new fingerprint on the host itself (ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-/, '').replace(/^ecdsa-sha2-nistp\d+$/, 'ecdsa')}_key.pub); only if it matches, remove the old key with \`ssh-keygen -R ${quoteArg(knownHostsName(host, port))}${fFlag}\` and connect again with ${this.options.acceptNewFlag ?? '--accept-new-host-keys'}`,
        )
      }
      case 'unknown': {
        const otherTypes = knownTypes.filter((t) => t !== type)
        if (otherTypes.length > 0) {
          // We asked for the key types we know first; a server that shows another one is suspicious.
          throw new HostKeyError(
            label,
            fingerprint,
            'unknown',
            `known_hosts has a ${otherTypes.join(', ')} key for ${label} but the server offered ${type}; check on the host that ${fingerprint} is its key, then add it with \`${keyscan}\``,
          )
        }
        if (!this.options.acceptNewHostKeys) {
          throw new HostKeyError(
            label,
            fingerprint,
            'unknown',
            `check that ${fingerprint} is the host's key (on the host: ssh-keygen -lf /etc/ssh/ssh_host_${type.replace(/^ssh-/, '').replace(/^ecdsa-sha2-nistp\d+$/, 'ecdsa')}_key.pub), then trust it with \`${keyscan}\`, or run again with ${this.options.acceptNewFlag ?? '--accept-new-host-keys'}`,
          )
        }
        return {
          add: async () => {
            await appendKnownHost(file, host, port, hostKeyLine(key))
            this.emit({type: 'host-key-added', node: this.node, host, port, fingerprint, file})
          },
        }
      }
    }
  }

  private async authMethods(endpoint: SshEndpoint): Promise<{methods: Array<AgentAuthMethod | PublicKeyAuthMethod>; tried: string[]}> {
    const methods: Array<AgentAuthMethod | PublicKeyAuthMethod> = []
    const tried: string[] = []
    const username = endpoint.user
    const socket = endpoint.identityAgent === 'none' ? undefined : (endpoint.identityAgent ?? this.env.SSH_AUTH_SOCK)
    let agent: BaseAgent | undefined
    let agentKeys: ParsedKey[] = []
    if (socket && existsSync(socket)) {
      agent = createAgent(socket)
      agentKeys = await agentIdentities(agent)
    }
    const fileKeys: ParsedKey[] = []
    const publicKeys: Buffer[] = []
    for (const path of endpoint.identityFiles) {
      const loaded = await this.loadIdentity(path, endpoint.identityFilesAreDefaults, agentKeys)
      if (loaded.publicKey) publicKeys.push(loaded.publicKey)
      if (loaded.key) {
        fileKeys.push(loaded.key)
        tried.push(this.tilde(path))
      }
    }
    if (agent && agentKeys.length > 0) {
      const offered = endpoint.identitiesOnly ? filteredAgent(agent, publicKeys) : agent
      methods.push({type: 'agent', username, agent: offered})
      tried.unshift(`the SSH agent (${agentKeys.length} key${agentKeys.length === 1 ? '' : 's'})`)
    }
    for (const key of fileKeys) methods.push({type: 'publickey', username, key})
    return {methods, tried}
  }

  /** A private key ready to sign with, or only its public half when the agent holds it. */
  private async loadIdentity(
    path: string,
    isDefault: boolean,
    agentKeys: readonly ParsedKey[],
  ): Promise<{key?: ParsedKey; publicKey?: Buffer}> {
    const cached = this.keyCache.get(path)
    if (cached) return {key: cached, publicKey: cached.getPublicSSH()}
    if (cached === null) return {}
    let data: Buffer
    try {
      data = await readFile(path)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      // OpenSSH's default names are only tried when present; a configured one is worth a word.
      if (!isDefault) this.emit({type: 'identity-skipped', node: this.node, path, reason: code === 'ENOENT' ? 'no such file' : String(code)})
      return {}
    }
    let parsed = utils.parseKey(data)
    if (parsed instanceof Error && /no passphrase given/i.test(parsed.message)) {
      const publicKey = await readPublicHalf(path)
      if (publicKey && agentKeys.some((k) => k.getPublicSSH().equals(publicKey))) {
        // The agent signs with this key: no need to ask for its passphrase.
        return {publicKey}
      }
      const decrypted = await this.decrypt(path, data)
      if (decrypted === undefined) {
        this.keyCache.set(path, null)
        return {publicKey}
      }
      parsed = decrypted
    }
    if (parsed instanceof Error) {
      this.emit({type: 'identity-skipped', node: this.node, path, reason: `unusable key: ${parsed.message}`})
      this.keyCache.set(path, null)
      return {}
    }
    const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed
    if (!key.isPrivateKey()) {
      this.emit({type: 'identity-skipped', node: this.node, path, reason: 'not a private key'})
      return {}
    }
    this.keyCache.set(path, key)
    return {key, publicKey: key.getPublicSSH()}
  }

  private async decrypt(path: string, data: Buffer): Promise<ParsedKey | Error | undefined> {
    const varName = this.options.passphraseEnvVar ?? 'HOMELAB_SSH_PASSPHRASE'
    const fromEnv = this.env[varName]
    const attempts: Array<() => Promise<string | undefined>> = []
    if (fromEnv !== undefined && fromEnv !== '') attempts.push(async () => fromEnv)
    if (this.options.askPassphrase) {
      const ask = this.options.askPassphrase
      for (let i = 0; i < 3; i++) attempts.push(() => ask(path))
    }
    if (attempts.length === 0) {
      this.emit({type: 'identity-skipped', node: this.node, path, reason: `encrypted; set ${varName} or run on a terminal to be asked`})
      return undefined
    }
    for (const attempt of attempts) {
      const passphrase = await attempt()
      if (passphrase === undefined) break
      const parsed = utils.parseKey(data, passphrase)
      if (!(parsed instanceof Error)) return parsed
      if (!/passphrase|integrity|decrypt/i.test(parsed.message)) return parsed
    }
    throw new ConnectionError(`wrong passphrase for SSH key ${this.tilde(path)}`, {
      hint: `set ${varName} to the key's passphrase (or type it when asked), or load the key into ssh-agent with \`ssh-add ${quoteArg(this.tilde(path))}\``,
    })
  }

  private connectError(error: Error & {level?: string; code?: string}, what: string, endpoint: SshEndpoint, tried: string[], isHop: boolean): HomelabError {
    if (error.level === 'client-authentication' || /authentication methods failed/i.test(error.message)) {
      const triedText = tried.length > 0 ? tried.join(', ') : 'no usable key (no agent, no readable identity file)'
      return new ConnectionError(`${what}: authentication failed (tried ${triedText})`, {
        cause: error,
        hint: `add your public key to ~${endpoint.user}/.ssh/authorized_keys on ${endpoint.host}, or name the right key with ssh.identityFile (homelab.yaml) or IdentityFile (~/.ssh/config)`,
      })
    }
    if (error.level === 'client-timeout' || /timed out/i.test(error.message)) {
      return new ConnectionError(`${what}: no SSH handshake within ${(this.options.connectTimeoutMs ?? endpoint.connectTimeoutMs ?? 20_000) / 1000}s`, {
        cause: error,
        hint: `check that ${endpoint.host} is up and sshd listens on port ${endpoint.port}${isHop ? '' : ' (and any jump host can reach it)'}`,
      })
    }
    return new ConnectionError(`cannot connect to ${what}: ${error.message}`, {
      cause: error,
      hint: `check that ${endpoint.host} is reachable and sshd listens on port ${endpoint.port}`,
    })
  }

  // --- commands -----------------------------------------------------------------------------

  private async runChannel(conn: Connection, argv: readonly string[], command: string, options: ExecOptions): Promise<ExecResult> {
    const {signal, timeoutMs} = options
    const privileged = options.privileged === true
    const grace = this.options.killGraceMs ?? 2000
    const marker = `homelab-pid-${randomBytes(6).toString('hex')}-`
    const line = remoteCommandLine(argv, privileged, this.become, marker)
    const out: Buffer[] = []
    const errOut: Buffer[] = []
    let pid: number | undefined
    let exitCode: number | null | undefined
    let closed = false
    let onClose = () => {}
    const channel = await this.openChannel<ClientChannel>(conn, (cb) => conn.client.exec(line, cb), command, signal, (ch) => {
      ch.on('data', (chunk: Buffer) => out.push(chunk))
      ch.stderr.on('data', (chunk: Buffer) => {
        errOut.push(chunk)
        if (pid === undefined) pid = findPid(Buffer.concat(errOut).toString('latin1'), marker)
      })
      ch.on('exit', (code: number | null) => {
        exitCode = typeof code === 'number' ? code : null
      })
      ch.on('error', () => {
        // 'close' follows and settles the promise.
      })
      ch.on('close', () => {
        closed = true
        onClose()
      })
    })
    return new Promise<ExecResult>((resolve, reject) => {
      let stopping: HomelabError | undefined
      let killTimer: NodeJS.Timeout | undefined
      let giveUpTimer: NodeJS.Timeout | undefined
      let finished = false

      const cleanup = () => {
        finished = true
        clearTimeout(timer)
        clearTimeout(killTimer)
        clearTimeout(giveUpTimer)
        signal?.removeEventListener('abort', onAbort)
      }
      const kill = (sig: 'TERM' | 'KILL') => {
        // Both ways: the signal request works where sshd allows it, the kill channel elsewhere.
        safe(() => sendSignal(channel, sig))
        if (pid !== undefined && !conn.closed) {
          const line = killCommandLine(pid, sig, privileged, this.become)
          safe(() =>
            conn.client.exec(line, (e, killer) => {
              if (e) return
              killer.on('data', () => {})
              killer.stderr.on('data', () => {})
              killer.on('error', () => {})
              killer.end()
            }),
          )
        }
      }
      const stop = (error: HomelabError) => {
        if (stopping || finished) return
        stopping = error
        kill('TERM')
        killTimer = setTimeout(() => {
          kill('KILL')
          safe(() => channel.close())
          giveUpTimer = setTimeout(() => {
            cleanup()
            reject(error)
          }, grace)
        }, grace)
      }
      const onAbort = () => stop(abortReason(signal, `\`${command}\` on ${this.node}`))
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(
              () =>
                stop(
                  new TimeoutError(`${this.node}: \`${command}\` did not finish within ${timeoutMs} ms; it was stopped`, {
                    hint: 'the node may be overloaded or the command stuck; run it by hand to see, or raise the timeout',
                  }),
                ),
              timeoutMs,
            )
      if (signal) {
        if (signal.aborted) onAbort()
        else signal.addEventListener('abort', onAbort, {once: true})
      }

      onClose = () => {
        if (finished) return
        cleanup()
        if (stopping) return reject(stopping)
        if (exitCode === undefined && conn.closed) return reject(this.lostError(conn, command))
        resolve({
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: stripMarker(Buffer.concat(errOut).toString('utf8'), marker),
          exitCode: exitCode ?? null,
        })
      }
      if (closed) return onClose()

      const stdin = options.stdin
      if (stdin === undefined) channel.end()
      else if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) channel.end(stdin)
      else {
        stdin.on('error', (e) => stop(new CommandError(`${this.node}: reading stdin for \`${command}\` failed: ${e.message}`, null, '', {cause: e})))
        stdin.pipe(channel)
      }
    })
  }

  /**
   * Opens a channel, retrying briefly when sshd refuses it: at MaxSessions it frees a slot a
   * moment after a channel closed on our side, so a refusal then is not yet an error.
   */
  private async openChannel<T>(
    conn: Connection,
    open: (cb: (err: Error | undefined, channel: T) => void) => void,
    what: string,
    signal?: AbortSignal,
    wire?: (channel: T) => void,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await new Promise<T>((resolve, reject) =>
          open((err, channel) => {
            if (err) return reject(err)
            // Listeners go on now: a fast command's output, exit and close can arrive in the
            // same packet batch as the open confirmation, before an awaiting caller resumes.
            wire?.(channel)
            resolve(channel)
          }),
        )
      } catch (error) {
        if (conn.closed) throw this.lostError(conn, what, error)
        const message = (error as Error).message
        if (!/open failed|administratively prohibited/i.test(message) || attempt >= 8) {
          throw new ConnectionError(`${this.node}: cannot start \`${what}\`: ${message}`, {
            cause: error,
            hint: `check sshd on ${this.node} (MaxSessions, its log), or lower the number of commands run at once`,
          })
        }
        if (signal?.aborted) throw abortReason(signal, what)
        await new Promise((r) => setTimeout(r, Math.min(25 * 2 ** attempt, 500)))
      }
    }
  }

  private lostError(conn: Connection, what: string, cause?: unknown): ConnectionError {
    return new ConnectionError(`${this.node}: connection lost while running \`${what}\`${conn.closeReason ? ` (${conn.closeReason})` : ''}; it may or may not have finished`, {
      cause,
      hint: `check that ${this.node} is up, then run again (finished steps are skipped)`,
    })
  }

  private sftp(conn: Connection): Promise<SFTPWrapper> {
    if (!conn.sftp) {
      const forget = () => {
        if (conn.sftp === opening) conn.sftp = undefined
      }
      const opening: Promise<SFTPWrapper> = this.openChannel<SFTPWrapper>(conn, (cb) => conn.client.sftp(cb), 'sftp', undefined, (sftp) =>
        sftp.on('close', forget),
      ).catch((error: HomelabError) => {
        forget()
        if (conn.closed) throw error
        throw new ConnectionError(`${this.node}: cannot start SFTP: ${(error.cause as Error | undefined)?.message ?? error.message}`, {
          cause: error,
          hint: `enable the sftp subsystem in sshd_config on ${this.node} (Subsystem sftp internal-sftp)`,
        })
      })
      conn.sftp = opening
    }
    return conn.sftp
  }

  private emit(event: SshTransportEvent): void {
    try {
      this.options.onEvent?.(event)
    } catch {
      // an observer's failure must not break the connection
    }
  }

  private tilde(path: string): string {
    const home = this.options.home ?? homedir()
    return home && (path === home || path.startsWith(`${home}/`)) ? `~${path.slice(home.length)}` : path
  }
}

function safe(fn: () => void): void {
  try {
    fn()
  } catch {
    // the channel is already gone
  }
}

/**
 * ssh2's channel.signal() is a no-op once we have sent EOF on stdin, which every command without
 * input does at once; the request itself is valid until the channel closes, so send it directly.
 */
function sendSignal(channel: ClientChannel, name: 'TERM' | 'KILL'): void {
  const c = channel as unknown as {outgoing?: {id: number; state: string}; _client?: {_protocol?: {signal(id: number, s: string): void}}}
  const state = c.outgoing?.state
  if ((state === 'open' || state === 'eof') && c._client?._protocol) c._client._protocol.signal(c.outgoing!.id, name)
}

function findPid(stderr: string, marker: string): number | undefined {
  const match = new RegExp(`(?:^|\\n)${marker}(\\d+)\\n`).exec(stderr)
  return match ? Number(match[1]) : undefined
}

/** Removes the wrapper's one pid line (whatever a login script printed before it stays). */
function stripMarker(stderr: string, marker: string): string {
  return stderr.replace(new RegExp(`(^|\\n)${marker}\\d+\\n`), '$1')
}


async function readPublicHalf(path: string): Promise<Buffer | undefined> {
  try {
    const parsed = utils.parseKey(await readFile(`${path}.pub`))
    return parsed instanceof Error ? undefined : (Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed).getPublicSSH()
  } catch {
    return undefined
  }
}

async function firstFileWith(files: readonly string[], test: (f: string) => Promise<boolean>): Promise<string | undefined> {
  for (const f of files) if (await test(f)) return f
  return undefined
}

function forwardOut(via: ClientType, viaEndpoint: SshEndpoint, to: SshEndpoint, node: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    via.forwardOut('127.0.0.1', 0, to.host, to.port, (err, stream) => {
      if (err) {
        reject(
          new ConnectionError(`jump host ${viaEndpoint.host} cannot reach ${to.host}:${to.port} (for node ${node}): ${err.message}`, {
            cause: err,
            hint: `check that ${to.host}:${to.port} is reachable from ${viaEndpoint.host} and that its sshd allows forwarding (AllowTcpForwarding)`,
          }),
        )
        return
      }
      resolve(stream)
    })
  })
}

function sftpError(error: unknown, node: string, user: string, remotePath: string, localPath?: string): HomelabError {
  const e = error as Error & {code?: number | string}
  if (localPath && (e.code === 'ENOENT' || e.code === 'EACCES')) {
    return new HomelabError(`cannot read ${localPath}: ${e.message}`, {cause: error, hint: 'check the local file exists and is readable'})
  }
  // SFTP status codes: 2 no such file, 3 permission denied.
  const reason = e.code === 2 ? 'no such directory' : e.code === 3 ? 'permission denied' : e.message
  return new HomelabError(`${node}: cannot write ${remotePath}: ${reason}`, {
    cause: error,
    hint:
      e.code === 3
        ? `${user} cannot write there: copy to a directory ${user} owns, then move it into place with a privileged command`
        : `check that the directory of ${remotePath} exists on ${node}`,
  })
}

function noDelaySocket(host: string, port: number): Duplex {
  const socket = netConnect({host, port})
  socket.setNoDelay(true)
  return socket
}

/** Clients whose socket has closed (ssh2 has no public flag for it). */
const closedClients = new WeakSet<ClientType>()

async function closeConnection(conn: Connection, boundMs = 2000): Promise<void> {
  const clients = [conn.client, ...conn.hops.slice().reverse()]
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (closedClients.has(c)) return resolve()
          const timer = setTimeout(() => {
            safe(() => c.destroy())
            resolve()
          }, boundMs)
          c.once('close', () => {
            clearTimeout(timer)
            resolve()
          })
          safe(() => c.end())
        }),
    ),
  )
  conn.closed = true
}
