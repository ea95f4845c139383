/**
 * Kubernetes `Status` objects and the error that carries one. Messages follow the real
 * kube-apiserver (apimachinery's `errors` package) word for word where clients are known to
 * match on them, so a product that works here keeps working against a real cluster.
 */

export interface StatusCause {
  reason?: string
  message?: string
  field?: string
}

export interface StatusDetails {
  name?: string
  group?: string
  kind?: string
  uid?: string
  causes?: StatusCause[]
  retryAfterSeconds?: number
}

export interface Status {
  kind: 'Status'
  apiVersion: 'v1'
  metadata: Record<string, never>
  status: 'Failure' | 'Success'
  message?: string
  reason?: string
  details?: StatusDetails
  code: number
}

/** A request that ends in a non-2xx `Status`. Thrown inside the server, never outside it. */
export class ApiError extends Error {
  readonly status: Status

  constructor(code: number, reason: string, message: string, details?: StatusDetails) {
    super(message)
    this.name = 'ApiError'
    // Field order as upstream serialises it.
    this.status = {kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, ...(reason ? {reason} : {}), ...(details && Object.keys(details).length > 0 ? {details} : {}), code}
  }

  get code(): number {
    return this.status.code
  }

  get reason(): string {
    return this.status.reason ?? ''
  }
}

/** What identifies the object an error is about: `pods`, `deployments.apps`, `plans.upgrade.cattle.io`. */
export interface Subject {
  group: string
  resource: string
  name?: string
  kind?: string
}

/** `pods` for the core group, `deployments.apps` otherwise: how the apiserver names a resource in messages. */
export function qualified(s: Pick<Subject, 'group' | 'resource'>): string {
  return s.group ? `${s.resource}.${s.group}` : s.resource
}

function details(s: Subject, name = s.name): StatusDetails {
  const d: StatusDetails = {}
  if (name !== undefined) d.name = name
  if (s.group) d.group = s.group
  d.kind = s.resource
  return d
}

export const errors = {
  notFound(s: Subject, name = s.name ?? ''): ApiError {
    return new ApiError(404, 'NotFound', `${qualified(s)} "${name}" not found`, details(s, name))
  },

  /** A path the server does not serve at all (unknown group, version or resource). */
  noSuchPath(): ApiError {
    return new ApiError(404, 'NotFound', 'the server could not find the requested resource', {})
  },

  alreadyExists(s: Subject, name = s.name ?? ''): ApiError {
    return new ApiError(409, 'AlreadyExists', `${qualified(s)} "${name}" already exists`, details(s, name))
  },

  conflict(s: Subject, name: string, why: string): ApiError {
    return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(s)} "${name}": ${why}`, details(s, name))
  },

  staleResourceVersion(s: Subject, name: string): ApiError {
    return errors.conflict(s, name, 'the object has been modified; please apply your changes to the latest version and try again')
  },

  /** 422: `Kind.group "name" is invalid: field: reason` (several causes joined in brackets, as upstream). */
  invalid(kind: string, group: string, name: string, causes: StatusCause[]): ApiError {
    const qualifiedKind = group ? `${kind}.${group}` : kind
    const parts = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message ?? ''))
    const joined = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`
    const d: StatusDetails = {name, kind, causes}
    if (group) d.group = group
    return new ApiError(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${joined}`, d)
  },

  /** A 422 that is not about one object's fields (e.g. a json-patch that does not apply). */
  unprocessable(message: string): ApiError {
    return new ApiError(422, 'Invalid', message, {})
  },

  badRequest(message: string): ApiError {
    return new ApiError(400, 'BadRequest', message)
  },

  unauthorized(): ApiError {
    return new ApiError(401, 'Unauthorized', 'Unauthorized')
  },

  forbidden(s: Subject, name: string, why: string): ApiError {
    return new ApiError(403, 'Forbidden', `${qualified(s)} "${name}" is forbidden: ${why}`, details(s, name))
  },

  methodNotAllowed(): ApiError {
    return new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {})
  },

  unsupportedMediaType(contentType: string, accepted: string[]): ApiError {
    return new ApiError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`,
      {causes: [{reason: 'UnexpectedServerResponse', message: contentType}]},
    )
  },

  tooManyRequests(message: string, retryAfterSeconds: number, causes: StatusCause[] = []): ApiError {
    const d: StatusDetails = {}
    if (retryAfterSeconds > 0) d.retryAfterSeconds = retryAfterSeconds
    if (causes.length > 0) d.causes = causes
    return new ApiError(429, 'TooManyRequests', message, d)
  },

  /** 410 for a watch (or list continue token) older than the retained history. */
  expired(message: string): ApiError {
    return new ApiError(410, 'Expired', message)
  },

  internal(message: string): ApiError {
    return new ApiError(500, 'InternalError', `Internal error occurred: ${message}`, {causes: [{message}]})
  },
}

export function successStatus(code: number, details?: StatusDetails): Status {
  const s: Status = {kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code}
  if (details) s.details = details
  return s
}
