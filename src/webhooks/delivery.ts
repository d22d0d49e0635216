// One delivery attempt: POST the event's JSON body, signed, to the webhook's URL, and record the
// outcome on the delivery row. 2xx: delivered. No answer within 10 s, a network error, 408, 429 or
// 5xx: the handler throws and the queue retries with backoff; after its last retry the delivery is
// dead (and the job dead-lettered). Anything else (3xx: redirects are not followed; other 4xx; a
// refused destination): failed, not retried. Neither the secret nor the signature is ever logged
// or stored, and only the first few KB of an answer are read.
import http from 'node:http';
import https from 'node:https';
import type { Knex } from 'knex';
import type { Job } from 'pg-boss';
import type { Config } from '../config.ts';
import type { Logger } from '../shared/logger.ts';
import { DestinationRefused, guardedLookup, refusedLiteral } from './destinations.ts';
import { signWebhook } from './signature.ts';
import type { WebhooksService } from './webhooks.service.ts';
import { updateDeliveryById, type DbDeliveryRow, type DbWebhookRow, type DeliveryStatus } from './webhooks.repo.ts';

export const DELIVER_QUEUE = 'webhook.deliver';
export const DELIVERY_TIMEOUT_MS = 10_000;
/** The most of an answer's body read; the rest is dropped with the connection. */
const READ_BYTES = 4096;
const SNIPPET_CHARS = 1000;
const ERROR_CHARS = 500;
export const USER_AGENT = 'OneID-Webhooks';

export interface DeliverJob { deliveryId: string }

interface Answer { status: number; text: string }

/** POSTs `body`; resolves with the status and the start of the answer, rejects on no answer. */
function post(url: URL, body: string, headers: Record<string, string>, allowInternal: boolean, signal: AbortSignal): Promise<Answer> {
  const refused = refusedLiteral(url.hostname.replace(/^\[|\]$/g, ''), allowInternal);
  if (refused) return Promise.reject(new DestinationRefused(refused));
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(url, {
      method: 'POST', agent: false, signal, lookup: guardedLookup(allowInternal) as never,
      headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'user-agent': USER_AGENT },
    }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).subarray(0, READ_BYTES).toString('utf8') });
        res.destroy();
      };
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= READ_BYTES) finish();
      });
      res.on('end', finish);
      res.on('error', finish);
      res.on('close', finish);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A short reason for a failed exchange: the code, never a stack, a header or a secret. */
function reasonOf(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  if (err instanceof DestinationRefused) return e.message;
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError' || e?.code === 'ABORT_ERR') return `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s`;
  const code = e?.code ?? e?.cause?.code;
  return code ? `network error: ${code}` : 'network error';
}

/** What a receiver's answer means. */
function outcomeOf(status: number): 'delivered' | 'retry' | 'failed' {
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 408 || status === 429 || status >= 500) return 'retry';
  return 'failed';
}

const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** The answer's start as the delivery log shows it: control characters out, our secrets and signatures redacted. */
function snippetOf(text: string, hidden: string[]): string | null {
  let out = text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '');
  for (const h of hidden) if (h) out = out.split(h).join('[redacted]');
  return out ? clip(out, SNIPPET_CHARS) : null;
}

export interface DeliveryDeps {
  db: Knex;
  log: Logger;
  jobs: Config['jobs'];
  webhooks: WebhooksService;
}

/** The handler of `webhook.deliver`: one attempt of one delivery. */
export async function deliver(deps: DeliveryDeps, job: Job<DeliverJob>): Promise<unknown> {
  const { db, log, jobs, webhooks } = deps;
  const { deliveryId } = job.data;
  const row = await db('webhook_deliveries as d').join('webhooks as w', 'w.id', 'd.webhook_id').where('d.id', deliveryId)
    .first<(DbDeliveryRow & { w: DbWebhookRow }) | undefined>(db.raw('d.*'), db.raw('row_to_json(w) as w'));
  // Deleted with its webhook, or settled by an earlier run of this job: nothing to do.
  if (!row) return { skipped: 'gone' };
  if (row.status === 'delivered' || row.status === 'failed') return { skipped: row.status };
  const webhook = row.w;
  const attempts = row.attempts + 1;
  const settle = async (status: DeliveryStatus, fields: Partial<DbDeliveryRow>) => {
    await updateDeliveryById(db, deliveryId, {
      status, attempts, last_attempt_at: new Date(), next_attempt_at: null,
      ...(status === 'pending' ? {} : { completed_at: new Date() }), ...fields,
    });
  };
  if (!webhook.enabled) {
    await settle('failed', { last_status: null, last_error: 'the webhook is disabled', response_snippet: null, attempts: row.attempts });
    return { status: 'failed' };
  }

  const secrets = webhooks.signingSecrets(webhook);
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = secrets.map((s) => signWebhook(s, row.event_id, timestamp, row.body)).join(' ');
  const allowInternal = await webhooks.allowInternalDestinations();
  const url = new URL(webhook.url);
  let answer: Answer | undefined;
  let error: string | undefined;
  let refused = false;
  try {
    answer = await post(url, row.body, {
      'webhook-id': row.event_id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signature,
    }, allowInternal, AbortSignal.any([job.signal, AbortSignal.timeout(DELIVERY_TIMEOUT_MS)]));
  } catch (err) {
    error = reasonOf(err);
    refused = err instanceof DestinationRefused;
  }
  const outcome = answer ? outcomeOf(answer.status) : refused ? 'failed' : 'retry';
  const snippet = answer ? snippetOf(answer.text, [...secrets, ...signature.split(' ')]) : null;
  if (answer && outcome !== 'delivered') error = answer.status >= 300 && answer.status < 400 ? `HTTP ${answer.status} (redirects are not followed)` : `HTTP ${answer.status}`;
  const fields: Partial<DbDeliveryRow> = { last_status: answer?.status ?? null, last_error: error ? clip(error, ERROR_CHARS) : null, response_snippet: snippet };
  const where = { event: 'webhook.delivery', webhook: webhook.id, delivery: deliveryId, eventType: row.event_type, host: url.host, attempt: attempts };

  if (outcome === 'delivered') {
    await settle('delivered', fields);
    log.info({ ...where, status: answer!.status }, 'webhook delivered');
    return { status: 'delivered', httpStatus: answer!.status };
  }
  if (outcome === 'failed') {
    await settle('failed', fields);
    log.info({ ...where, status: answer?.status, reason: error }, 'webhook delivery failed; not retried');
    return { status: 'failed', reason: error };
  }
  const last = job.retryCount >= jobs.retryLimit;
  if (last) {
    await settle('dead', fields);
  } else {
    // The queue's backoff (pg-boss): at least retryDelay * 2^retryCount seconds, with jitter up to twice that, capped.
    const wait = Math.min(jobs.retryMaxSeconds, Math.max(1, jobs.retryDelaySeconds) * 2 ** Math.min(16, job.retryCount));
    await settle('pending', { ...fields, next_attempt_at: new Date(Date.now() + wait * 1000) });
  }
  log.info({ ...where, status: answer?.status, reason: error, dead: last }, last ? 'webhook delivery dead after its last retry' : 'webhook delivery will be retried');
  throw new Error(`webhook ${webhook.id} delivery ${deliveryId}: ${error}`);
}
