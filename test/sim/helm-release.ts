/**
 * A Helm 3 release Secret as `helm install` stores it (storage driver "secret"): named
 * `sh.helm.release.v1.<name>.v<revision>`, labelled owner=helm, and `data.release` = the Secret's
 * base64 of Helm's base64 of gzip of the release JSON, whose `manifest` is the rendered YAML.
 */
import {gzipSync} from 'node:zlib'

import type {KubeObject} from './kube-api/types.js'

export interface HelmReleaseOptions {
  name: string
  namespace: string
  revision?: number
  status?: 'deployed' | 'superseded' | 'failed'
  chart?: {name: string; version: string}
  /** The rendered manifest: YAML documents separated by `---`. */
  manifest: string
}

export function helmReleaseSecret(options: HelmReleaseOptions): KubeObject {
  const revision = options.revision ?? 1
  const status = options.status ?? 'deployed'
  const release = {
    name: options.name,
    namespace: options.namespace,
    version: revision,
    info: {status, first_deployed: '2023-05-01T10:00:00Z', last_deployed: '2023-05-01T10:00:00Z', description: 'Install complete'},
    chart: {metadata: {name: options.chart?.name ?? options.name, version: options.chart?.version ?? '1.0.0', apiVersion: 'v2'}},
    config: {},
    manifest: options.manifest,
  }
  const helmEncoded = gzipSync(Buffer.from(JSON.stringify(release))).toString('base64')
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'helm.sh/release.v1',
    metadata: {
      name: `sh.helm.release.v1.${options.name}.v${revision}`,
      namespace: options.namespace,
      labels: {name: options.name, owner: 'helm', status, version: String(revision), modifiedAt: '1682935200'},
    },
    data: {release: Buffer.from(helmEncoded).toString('base64')},
  }
}
