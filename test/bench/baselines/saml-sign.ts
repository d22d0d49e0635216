// Ceiling for scenario 7: how many times one core can sign the assertion OneID sends, with the
// XML signing library alone. run.ts starts it pinned to the server core, like OneID, and hands it
// on stdin an assertion taken from a real OneID Response (its signature removed) and OneID's own
// SAML signing key; it signs that assertion again and again with src/saml/signature.ts's
// signEnveloped (xml-crypto: RSA-SHA256, exclusive c14n, the enveloped-signature transform, one
// Reference to the assertion's ID, the signature after its Issuer), exactly what OneID does once
// per sign-on. No HTTP, no database, no template: the most sign-ons one core could sign.
//
// env: BENCH_DURATION_S, BENCH_WARMUP_S; stdin: {xml, id, privateKeyPem, certificate}; prints one JSON line.
import { createPrivateKey } from 'node:crypto';
import { signEnveloped } from '../../../src/saml/signature.ts';

const durationS = Number(process.env.BENCH_DURATION_S ?? 10);
const warmupS = Number(process.env.BENCH_WARMUP_S ?? 2);

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { xml: string; id: string; privateKeyPem: string; certificate: string };
const key = { privateKey: createPrivateKey(input.privateKeyPem), certificate: input.certificate };

const sample = signEnveloped(input.xml, input.id, 'Assertion', key);
if (!sample.includes('<ds:SignatureValue>')) throw new Error('the ceiling made no signature');

// One signature after another on the main thread, as OneID signs (synchronously, in the
// request). The marks go out between signatures: a busy loop leaves no turn to a timer.
const start = performance.now();
const measureFrom = start + warmupS * 1000;
const end = measureFrom + durationS * 1000;
const latencies: number[] = [];
let marked = false;
for (;;) {
  const t0 = performance.now();
  if (!marked && t0 >= measureFrom) {
    process.stderr.write('@measure-start\n');
    marked = true;
  }
  if (t0 >= end) break;
  signEnveloped(input.xml, input.id, 'Assertion', key);
  const t1 = performance.now();
  if (t1 >= measureFrom && t1 <= end) latencies.push(t1 - t0);
}
process.stderr.write('@measure-end\n');
latencies.sort((a, b) => a - b);
const at = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
process.stdout.write(`${JSON.stringify({
  rps: latencies.length / durationS, ok: latencies.length, errors: 0, p50: at(0.5), p99: at(0.99), durationS, assertionBytes: Buffer.byteLength(input.xml),
})}\n`);
