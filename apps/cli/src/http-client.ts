/** Thrown when the API answers with an error: its code and message are shown to the user. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Calls query-api at FLASHDUCK_API_URL (default http://127.0.0.1:8080) with the token, if any. */
export async function apiRequest(method: 'GET' | 'POST', path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<Response> {
  const base = (process.env.FLASHDUCK_API_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const headers: Record<string, string> = { ...extraHeaders };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const token = process.env.FLASHDUCK_API_TOKEN;
  if (token) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, 'unreachable', `cannot reach query-api at ${base} (${(err as Error).cause ? String((err as { cause: Error }).cause.message) : (err as Error).message}); start it or set FLASHDUCK_API_URL`);
  }
  if (!res.ok) {
    const text = await res.text();
    let code = `http_${res.status}`;
    let message = text;
    try {
      const parsed = JSON.parse(text) as { error?: { code: string; message: string } };
      if (parsed.error) ({ code, message } = parsed.error);
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, code, message);
  }
  return res;
}
