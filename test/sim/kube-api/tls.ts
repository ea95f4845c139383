/**
 * A throwaway CA and a server certificate it signs, made fresh for each simulated apiserver
 * (as k3s makes its own CA), so clients verify TLS against `certificate-authority-data` exactly
 * as they would against a real cluster.
 */
import {generate} from 'selfsigned'

export interface ServerTls {
  caPem: string
  certPem: string
  keyPem: string
}

export async function makeServerTls(): Promise<ServerTls> {
  const notBeforeDate = new Date(Date.now() - 60_000)
  const notAfterDate = new Date(Date.now() + 7 * 24 * 3600_000)
  const ca = await generate([{name: 'commonName', value: 'homelab-sim-server-ca'}], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    extensions: [
      {name: 'basicConstraints', cA: true, critical: true},
      {name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true},
    ],
  })
  const server = await generate([{name: 'commonName', value: 'kube-apiserver'}], {
    keyType: 'ec',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    ca: {key: ca.private, cert: ca.cert},
    extensions: [
      {name: 'basicConstraints', cA: false},
      {name: 'keyUsage', digitalSignature: true, keyEncipherment: true},
      {name: 'extKeyUsage', serverAuth: true},
      {
        name: 'subjectAltName',
        altNames: [
          {type: 2, value: 'localhost'},
          {type: 2, value: 'kubernetes'},
          {type: 2, value: 'kubernetes.default.svc'},
          {type: 7, ip: '127.0.0.1'},
        ],
      },
    ],
  })
  return {caPem: ca.cert, certPem: server.cert, keyPem: server.private}
}
