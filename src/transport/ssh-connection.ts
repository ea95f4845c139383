import {connect as netConnect} from 'node:net'
import type {Duplex} from 'node:stream'
import ssh2 from 'ssh2'
import type {Client as ClientType, ConnectConfig, SFTPWrapper} from 'ssh2'
import {ConnectionError, HomelabError} from '../errors.js'
import {knownKeyTypes} from './known-hosts.js'
import type {SshAuth} from './ssh-auth.js'
import type {SshEndpoint} from './ssh-config.js'
import {abortReason, type SshContext} from './ssh-context.js'
import {hostKeyAlgorithms, verifyHostKey} from './ssh-host-key.js'

const {Client} = ssh2

export interface Connection {
  client: ClientType
  /** Jump-host clients, dialled first; closed with the connection. */
  hops: ClientType[]
  closed: boolean
  /** Why it closed, when it did so on its own. */
  closeReason?: string
  sftp?: Promise<SFTPWrapper>
}

/**
 * Dials the target through its ProxyJump hops, one SSH login per hop, each over a port
 * forwarded by the one before. `onClosed` hears once when the connection ends for any reason
 * (a hop's end takes the node's connection with it).
 */
export async function openConnection(ctx: SshContext, auth: SshAuth, onClosed: (conn: Connection, reason?: string) => void): Promise<Connection> {
  const target = ctx.options.target
  const endpoints: SshEndpoint[] = [...target.proxyJump, target]
  ctx.emit({type: 'connecting', node: ctx.node, host: target.host, port: target.port, via: target.proxyJump.map((h) => `${h.host}:${h.port}`)})
  const clients: ClientType[] = []
  try {
    let sock: Duplex | undefined
    for (const [index, endpoint] of endpoints.entries()) {
      if (index > 0) sock = await forwardOut(clients[index - 1]!, endpoints[index - 1]!, endpoint, ctx.node)
      clients.push(await dial(ctx, auth, endpoint, sock, index < endpoints.length - 1))
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
    for (const hop of conn.hops) hop.end()
    onClosed(conn, reason)
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
  ctx.emit({type: 'connected', node: ctx.node, host: target.host, port: target.port})
  return conn
}

/** One SSH handshake + auth to `endpoint`, directly or over `sock`. */
async function dial(ctx: SshContext, auth: SshAuth, endpoint: SshEndpoint, sock: Duplex | undefined, isHop: boolean): Promise<ClientType> {
  const what = `${isHop ? 'jump host ' : ''}${endpoint.user}@${endpoint.host}:${endpoint.port}${isHop ? '' : ` (node ${ctx.node})`}`
  const {methods, tried} = await auth.methods(endpoint)
  const known = await knownKeyTypes(endpoint.knownHostsFiles, endpoint.host, endpoint.port)
  const client = new Client()
  client.once('close', () => closedClients.add(client))
  let hostKeyFailure: Error | undefined
  let pendingAdd: Promise<void> | undefined
  let addKey: (() => Promise<void>) | undefined

  const hostVerifier = (key: Buffer, verify: (ok: boolean) => void) => {
    verifyHostKey(ctx, endpoint, key, known).then(
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
    readyTimeout: ctx.options.connectTimeoutMs ?? endpoint.connectTimeoutMs ?? 20_000,
    keepaliveInterval: ctx.options.keepaliveIntervalMs ?? endpoint.keepaliveIntervalMs ?? 15_000,
    keepaliveCountMax: ctx.options.keepaliveCountMax ?? endpoint.keepaliveCountMax ?? 3,
    hostVerifier,
    algorithms: {serverHostKey: hostKeyAlgorithms(known) as never},
    authHandler: methods,
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
      fail(connectError(ctx, error, what, endpoint, tried, isHop))
    })
    client.once('close', () => fail(new ConnectionError(`${what} closed the connection during login`, {hint: `check the sshd log on ${endpoint.host}`})))
    try {
      client.connect(config)
    } catch (error) {
      fail(new ConnectionError(`cannot connect to ${what}: ${(error as Error).message}`, {cause: error}))
    }
  })
}

/** ssh2's failure in words: which keys were tried, how long we waited, where to look. */
function connectError(ctx: SshContext, error: Error & {level?: string; code?: string}, what: string, endpoint: SshEndpoint, tried: string[], isHop: boolean): HomelabError {
  if (error.level === 'client-authentication' || /authentication methods failed/i.test(error.message)) {
    const triedText = tried.length > 0 ? tried.join(', ') : 'no usable key (no agent, no readable identity file)'
    return new ConnectionError(`${what}: authentication failed (tried ${triedText})`, {
      cause: error,
      hint: `add your public key to ~${endpoint.user}/.ssh/authorized_keys on ${endpoint.host}, or name the right key with ssh.identityFile (homelab.yaml) or IdentityFile (~/.ssh/config)`,
    })
  }
  if (error.level === 'client-timeout' || /timed out/i.test(error.message)) {
    return new ConnectionError(`${what}: no SSH handshake within ${(ctx.options.connectTimeoutMs ?? endpoint.connectTimeoutMs ?? 20_000) / 1000}s`, {
      cause: error,
      hint: `check that ${endpoint.host} is up and sshd listens on port ${endpoint.port}${isHop ? '' : ' (and any jump host can reach it)'}`,
    })
  }
  return new ConnectionError(`cannot connect to ${what}: ${error.message}`, {
    cause: error,
    hint: `check that ${endpoint.host} is reachable and sshd listens on port ${endpoint.port}`,
  })
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

function noDelaySocket(host: string, port: number): Duplex {
  const socket = netConnect({host, port})
  socket.setNoDelay(true)
  return socket
}

/**
 * Opens a channel, retrying briefly when sshd refuses it: at MaxSessions it frees a slot a
 * moment after a channel closed on our side, so a refusal then is not yet an error.
 */
export async function openChannel<T>(
  node: string,
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
      if (conn.closed) throw connectionLost(node, conn, what, error)
      const message = (error as Error).message
      if (!/open failed|administratively prohibited/i.test(message) || attempt >= 8) {
        throw new ConnectionError(`${node}: cannot start \`${what}\`: ${message}`, {
          cause: error,
          hint: `check sshd on ${node} (MaxSessions, its log), or lower the number of commands run at once`,
        })
      }
      if (signal?.aborted) throw abortReason(signal, what)
      await new Promise((r) => setTimeout(r, Math.min(25 * 2 ** attempt, 500)))
    }
  }
}

export function connectionLost(node: string, conn: Connection, what: string, cause?: unknown): ConnectionError {
  return new ConnectionError(`${node}: connection lost while running \`${what}\`${conn.closeReason ? ` (${conn.closeReason})` : ''}; it may or may not have finished`, {
    cause,
    hint: `check that ${node} is up, then run again (finished steps are skipped)`,
  })
}

/** Runs a call on a channel or client that may already be gone, where that is no error. */
export function safe(fn: () => void): void {
  try {
    fn()
  } catch {
    // the channel is already gone
  }
}

/** Clients whose socket has closed (ssh2 has no public flag for it). */
const closedClients = new WeakSet<ClientType>()

/** Ends the node's client, then its hops; one that does not close within `boundMs` is destroyed. */
export async function closeConnection(conn: Connection, boundMs = 2000): Promise<void> {
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
