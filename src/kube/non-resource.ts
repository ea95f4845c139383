import https from 'node:https'

import type {KubeClients} from './client.js'

export interface NonResourceAnswer {
  status: number
  body: string
}

/** A real apiserver's /metrics is a few MiB; more than this is not an apiserver answering. */
const MAX_BODY = 64 * 1024 * 1024

/**
 * GET of a non-resource URL (`/metrics`), which the typed clients do not cover, with the
 * kubeconfig's credentials and CA: the same TLS verification as every other call.
 */
export async function getNonResource(kube: KubeClients, path: string, options: {signal?: AbortSignal; timeoutMs?: number} = {}): Promise<NonResourceAnswer> {
  const url = new URL(path, kube.server)
  const requestOptions: https.RequestOptions = {method: 'GET', headers: {}}
  await kube.kubeConfig.applyToHTTPSOptions(requestOptions)
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 15_000)
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
  return new Promise((resolve, reject) => {
    const request = https.request(url, {...requestOptions, signal}, (response) => {
      const chunks: Buffer[] = []
      let size = 0
      response.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size > MAX_BODY) request.destroy(new Error(`${path} answered more than ${MAX_BODY / 1024 / 1024} MiB`))
        else chunks.push(chunk)
      })
      response.on('end', () => resolve({status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8')}))
      response.on('error', reject)
    })
    request.on('error', reject)
    request.end()
  })
}
