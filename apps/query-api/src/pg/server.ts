import { createHash, createHmac, pbkdf2Sync, randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { counter, gauge, type Logger } from '@flashduck/core';
import { verifyScramSha256Password, type PostgresConnection, type PostgresConnectionOptions, type ScramSha256Data } from 'pg-gateway';
import { fromNodeSocket } from 'pg-gateway/node';
import type { Catalog } from '../snapshots/catalog.js';
import { backendKeyData, errorResponse, parameterStatus } from './messages.js';
import { PgSession, type SessionLimits, type SharedAnswers } from './session.js';
import { REPORTED_SETTINGS, SETTING_NAMES } from './statements.js';

const connectionsOpen = gauge('flashduck_query_pg_connections', 'Open PostgreSQL-protocol connections');
const connectionsTotal = counter('flashduck_query_pg_connections_total', 'PostgreSQL-protocol connections by outcome', ['outcome']);

export interface PgServerOptions {
  readonly host: string;
  readonly port: number;
  readonly maxConnections: number;
  /** A connection with no statement running is closed after this long without a message. */
  readonly idleMs: number;
  /** PEM files: with both, TLS is offered (SSLRequest answered S) and required. */
  readonly tlsCertFile: string | undefined;
  readonly tlsKeyFile: string | undefined;
  /** With tokens, a client's password must be one with the read scope (SCRAM-SHA-256); without, anyone connects. */
  readonly tokens: readonly { token: string; scopes: readonly string[] }[];
  readonly limits: SessionLimits;
  /** The result cache and table-reference parser HTTP uses. */
  readonly shared: SharedAnswers;
  readonly catalog: Catalog;
  readonly log: Logger;
}

export interface PgServer {
  readonly port: number;
  close(): Promise<void>;
}

const CANCEL_REQUEST_CODE = 80877102;
const SCRAM_ITERATIONS = 4096;

const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest();

/** SCRAM-SHA-256 verifiers of the read-scoped tokens, all with one salt (the salt is sent before the password is known). */
function scramVerifiers(tokens: PgServerOptions['tokens']): { salt: string; keys: { storedKey: string; serverKey: string }[] } {
  const salt = randomBytes(16);
  const keys = tokens
    .filter((t) => t.scopes.includes('read'))
    .map((t) => {
      const salted = pbkdf2Sync(t.token, salt, SCRAM_ITERATIONS, 32, 'sha256');
      return { storedKey: createHash('sha256').update(hmac(salted, 'Client Key')).digest('base64'), serverKey: hmac(salted, 'Server Key').toString('base64') };
    });
  return { salt: salt.toString('base64'), keys };
}

/**
 * The PostgreSQL protocol beside HTTP: pg-gateway does the startup, SSLRequest/TLS and SCRAM exchange; a
 * PgSession answers the queries. Connections are bounded and idle ones closed; a CancelRequest (a connection
 * of its own carrying the process id and secret this server gave out) interrupts the statement it names.
 */
export async function startPgServer(o: PgServerOptions): Promise<PgServer> {
  const sessions = new Map<number, { secret: number; session: PgSession }>();
  /** What an idle timeout does to a connection: closes it, telling an authenticated client why. */
  const idle = new WeakMap<net.Socket, () => void>();
  const sockets = new Set<net.Socket>();
  const tls = o.tlsCertFile && o.tlsKeyFile ? { cert: toArrayBuffer(readFileSync(o.tlsCertFile)), key: toArrayBuffer(readFileSync(o.tlsKeyFile)) } : undefined;
  const verifiers = o.tokens.length ? scramVerifiers(o.tokens) : null;
  /** The authentication a connection goes through: SCRAM-SHA-256 against the read tokens, or none without tokens. */
  const authFor = (ref: { conn?: PostgresConnection }): PostgresConnectionOptions['auth'] =>
    verifiers
      ? {
          method: 'scram-sha-256',
          // One verifier per connection: which token the password is becomes known only at the proof.
          getScramSha256Data: (): ScramSha256Data => ({ salt: verifiers.salt, iterations: SCRAM_ITERATIONS, storedKey: verifiers.keys[0]?.storedKey ?? '', serverKey: verifiers.keys[0]?.serverKey ?? '' }),
          validateCredentials: async ({ authMessage, clientProof, scramSha256Data, username }) => {
            for (const k of verifiers.keys) {
              if (await verifyScramSha256Password({ authMessage, clientProof, storedKey: k.storedKey })) {
                // The server's signature must come from the token the client proved.
                Object.assign(scramSha256Data, k);
                return true;
              }
            }
            connectionsTotal.inc({ outcome: 'auth_failed' });
            reportInvalidPassword(ref.conn, username);
            return false;
          },
        }
      : { method: 'trust' };

  const accept = async (socket: net.Socket) => {
    const ref: { conn?: PostgresConnection } = {};
    const pid = randomInt(1, 2 ** 31 - 1);
    const secret = randomInt(0, 2 ** 31 - 1);
    const send = async (bytes: Buffer) => {
      if (bytes.length) await ref.conn!.streamWriter!.write(bytes);
    };
    const session = new PgSession(o.catalog, o.limits, o.shared, send);
    sessions.set(pid, { secret, session });
    socket.once('close', () => sessions.delete(pid));
    idle.set(socket, () => {
      if (session.busy) return;
      void send(errorResponse({ severity: 'FATAL', code: '57P05', message: `terminating connection due to idle timeout (QUERY_API_PG_IDLE_MS=${o.idleMs})` }))
        .catch(() => undefined)
        .finally(() => socket.destroy());
    });
    ref.conn = await fromNodeSocket(socket, {
      serverVersion: '16.0 (FlashDuck)',
      auth: authFor(ref),
      ...(tls ? { tls } : {}),
      onAuthenticated: async (state) => {
        connectionsTotal.inc({ outcome: 'accepted' });
        if (state.clientParams?.application_name) session.settings.application_name = state.clientParams.application_name;
        const reported = REPORTED_SETTINGS.filter((n) => n !== 'server_version').map((n) => parameterStatus(SETTING_NAMES[n] ?? n, session.settings[n] ?? ''));
        await send(Buffer.concat([...reported, backendKeyData(pid, secret)]));
      },
      onMessage: async (data, state) => {
        if (state.step !== 'ReadyForQuery' || data[0] === 0x58 /* Terminate */) return undefined;
        return await session.handle(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      },
    });
  };

  const server = net.createServer((socket) => {
    socket.on('error', (err) => o.log.debug({ err }, 'a PostgreSQL client connection failed'));
    // An answer ends with a small ReadyForQuery written apart from the rows: without this, Nagle's algorithm holds
    // it until the client's delayed ACK (~40 ms per statement).
    socket.setNoDelay(true);
    if (sockets.size >= o.maxConnections) {
      connectionsTotal.inc({ outcome: 'refused_limit' });
      socket.once('data', () => socket.end(errorResponse({ severity: 'FATAL', code: '53300', message: `sorry, too many clients already (QUERY_API_PG_MAX_CONNECTIONS=${o.maxConnections})` })));
      return;
    }
    sockets.add(socket);
    connectionsOpen.set(sockets.size);
    // Until its session starts, a connection that sends nothing is closed after the idle time too.
    idle.set(socket, () => socket.destroy());
    socket.setTimeout(o.idleMs);
    socket.on('timeout', () => idle.get(socket)?.());
    socket.once('close', () => {
      sockets.delete(socket);
      connectionsOpen.set(sockets.size);
    });
    // A CancelRequest comes on a connection of its own, as its first 16 bytes.
    socket.once('data', (first: Buffer) => {
      socket.pause();
      if (first.length >= 16 && first.readInt32BE(0) === 16 && first.readInt32BE(4) === CANCEL_REQUEST_CODE) {
        const target = sessions.get(first.readInt32BE(8));
        if (target && target.secret === first.readInt32BE(12)) target.session.cancel();
        connectionsTotal.inc({ outcome: 'cancel_request' });
        socket.destroy();
        return;
      }
      socket.unshift(first);
      accept(socket).catch((err: unknown) => {
        o.log.warn({ err }, 'a PostgreSQL client connection could not start');
        socket.destroy();
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new Error(`port ${o.port} for the PostgreSQL protocol is in use (QUERY_API_PG_PORT; another server, or 0 turns the protocol off)`) : err),
    );
    server.listen(o.port, o.host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  o.log.info({ port, tls: !!tls, auth: verifiers ? 'scram-sha-256' : 'trust', maxConnections: o.maxConnections }, 'PostgreSQL protocol listening');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

function toArrayBuffer(b: Buffer): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/**
 * pg-gateway reports a failed SCRAM proof with SQLSTATE 28000; PostgreSQL says 28P01 (invalid_password), which
 * clients and poolers tell apart from other refusals. The next error this connection writes — that report — is
 * written as PostgreSQL's.
 */
function reportInvalidPassword(conn: PostgresConnection | undefined, user: string): void {
  const writer = conn?.streamWriter;
  if (!writer) return;
  const write = writer.write.bind(writer);
  writer.write = (chunk: Uint8Array) =>
    write(chunk[0] === 0x45 /* ErrorResponse */ ? errorResponse({ severity: 'FATAL', code: '28P01', message: `password authentication failed for user "${user}"` }) : chunk);
}
