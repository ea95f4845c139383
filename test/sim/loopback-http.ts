import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import type {AddressInfo, Socket} from 'node:net'

export interface LoopbackHttp {
  server: Server
  /** `http://127.0.0.1:PORT`. */
  origin: string
  /** Closes the listener and every open connection (keep-alive clients would hold it open). */
  close(): Promise<void>
}

/** An HTTP server for the simulation on a free loopback port: nothing outside 127.0.0.1 can reach it. */
export async function listenOnLoopback(handle: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>): Promise<LoopbackHttp> {
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    void handle(req, res)
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  return {
    server,
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const s of sockets) s.destroy()
      await closed
    },
  }
}
