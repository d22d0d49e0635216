import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths that must never reach a log line, whatever object is logged. */
const REDACT = [
  'password', '*.password', 'client_secret', '*.client_secret', 'token', '*.token',
  'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]',
  'headers.authorization', 'headers.cookie',
];

export function createLogger(level: string, destination: number = 1): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: { service: 'oneid' } }, pino.destination({ dest: destination, sync: false }));
}
