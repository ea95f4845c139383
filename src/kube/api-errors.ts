/** What the API server said when a call failed, read from client-node's ApiException. */
export interface ApiFailure {
  code?: number
  reason?: string
  message: string
}

export function apiFailure(error: unknown): ApiFailure {
  const e = error as {code?: unknown; statusCode?: unknown; body?: unknown; message?: unknown}
  const code = typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined
  let body: {reason?: string; message?: string} | undefined
  if (typeof e?.body === 'string') {
    try {
      body = JSON.parse(e.body) as typeof body
    } catch {
      body = {message: e.body}
    }
  } else if (e?.body && typeof e.body === 'object') {
    body = e.body as typeof body
  }
  return {code, reason: body?.reason, message: body?.message ?? (typeof e?.message === 'string' ? e.message : String(error))}
}

export function isNotFound(error: unknown): boolean {
  return apiFailure(error).code === 404
}

export function isConflict(error: unknown): boolean {
  return apiFailure(error).code === 409
}

/** No HTTP answer at all (refused, reset, TLS failure): the API server may be restarting. */
export function isUnreachable(error: unknown): boolean {
  return apiFailure(error).code === undefined
}
