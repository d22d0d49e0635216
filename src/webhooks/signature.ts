// Webhook signatures, the Standard Webhooks scheme (https://www.standardwebhooks.com/): the secret
// is `whsec_` + base64 of 32 random bytes; the key is those bytes. Each request carries
//   Webhook-Id: the event id (the same on every retry and redelivery: receivers dedupe on it)
//   Webhook-Timestamp: unix seconds when this attempt was signed
//   Webhook-Signature: `v1,` + base64(HMAC-SHA256(key, `${id}.${timestamp}.${body}`)), several
//     separated by spaces while a rotated-out secret still signs beside the new one.
// Receivers verify with verifyWebhookSignature below, or with any Standard Webhooks library.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const PREFIX = 'whsec_';

/** A new signing secret. */
export const newWebhookSecret = (): string => PREFIX + randomBytes(32).toString('base64');

function keyOf(secret: string): Buffer {
  const raw = secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret;
  const key = Buffer.from(raw, 'base64');
  if (key.length < 16) throw new Error('not a webhook secret');
  return key;
}

/** The signature of one message: `v1,` + base64 HMAC-SHA256 over `${id}.${timestamp}.${body}`. */
export function signWebhook(secret: string, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', keyOf(secret)).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const found = Object.entries(headers as Record<string, string | string[] | undefined>).find(([k]) => k.toLowerCase() === name);
  const v = found?.[1];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * What a receiver runs on each request: true when one of the `v1` signatures in Webhook-Signature
 * was made with `secret` over this id, timestamp and exact body (the raw bytes as received, before
 * any JSON parsing), and the timestamp is within `toleranceSeconds` of now (default 5 minutes:
 * a captured request cannot be replayed later). Constant-time comparison.
 */
export function verifyWebhookSignature(
  secret: string, headers: WebhookHeaders, body: string | Buffer, toleranceSeconds = 300, nowSeconds = Math.floor(Date.now() / 1000),
): boolean {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures || !/^\d{1,12}$/.test(timestamp)) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, id, Number(timestamp), typeof body === 'string' ? body : body.toString('utf8')));
  return signatures.split(' ').some((candidate) => {
    const given = Buffer.from(candidate);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
