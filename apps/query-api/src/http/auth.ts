import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { AppError } from '@flashduck/core';

type Scope = 'read' | 'write';
const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Bearer-token check. With no tokens configured every request passes. Tokens are compared as
 * SHA-256 digests with timingSafeEqual, so neither length nor content leaks through timing.
 */
export function requireScope(tokens: readonly { token: string; scopes: readonly Scope[] }[], scope: Scope) {
  const known = tokens.map((t) => ({ hash: digest(t.token), scopes: t.scopes }));
  return (req: Request, _res: Response, next: NextFunction) => {
    if (known.length === 0) return next();
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    const given = m?.[1] ?? (typeof req.query.token === 'string' ? req.query.token : undefined);
    if (!given) return next(new AppError('unauthorized', 'missing bearer token: send "Authorization: Bearer <token>"'));
    const h = digest(given.trim());
    let match: (typeof known)[number] | undefined;
    for (const k of known) if (timingSafeEqual(k.hash, h)) match = k;
    if (!match) return next(new AppError('unauthorized', 'unknown token'));
    if (!match.scopes.includes(scope)) return next(new AppError('forbidden', `this token may not ${scope}`));
    return next();
  };
}
