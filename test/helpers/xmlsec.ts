// Debian's xmlsec1 (the reference C implementation, nobody here wrote it) checking OneID's XML
// signatures and decrypting its encrypted assertions independently of xml-crypto.
//
// `xmlsec1 --verify` checks one signature: the first ds:Signature in document order, unless told
// where to start. With a Response and an Assertion both signed, the Response's comes first and
// the Assertion's would never be looked at. xmlsec1 1.2.37 takes `--node-xpath <expr>` as the
// start node of --verify, and that node must be the ds:Signature itself; its XPath has no
// namespace bindings, so the path is written with element positions (`/*[1]/*[4]/*[2]`), one run
// per signature. The ID attributes of SAML elements are not DTD-declared IDs, so each element
// kind whose signature is checked is named with --id-attr:ID. xmlsec1 does not care WHICH element
// a signature covers; verifyEachSignature also checks that each signature's Reference is its own
// parent (what SAML requires, and what a wrapping attack breaks).
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DOMParser } from '@xmldom/xmldom';

export const XMLSEC1 = '/usr/bin/xmlsec1';
const DS_NS = 'http://www.w3.org/2000/09/xmldsig#';

export const SAML_ID_NODES = [
  'urn:oasis:names:tc:SAML:2.0:protocol:Response',
  'urn:oasis:names:tc:SAML:2.0:assertion:Assertion',
  'urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest',
  'urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest',
  'urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse',
  'urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor',
] as const;

export interface XmlsecResult { ok: boolean; code: number; output: string }

function run(args: string[]): Promise<XmlsecResult & { stdout: string }> {
  return new Promise((resolve) => {
    execFile(XMLSEC1, args, { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ ok: code === 0, code, output: `${stderr}`, stdout });
    });
  });
}

/** Runs `fn` with a fresh temp folder under os.tmpdir(), removed afterwards whatever happens. */
async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'oneid-xmlsec-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface VerifyOptions {
  /** The element kinds whose ID attribute is an XML ID ("<namespace>:<local name>"); default: SAML's. */
  idAttr?: string | readonly string[];
  /** The --node-xpath start node (a ds:Signature); default: xmlsec1's first ds:Signature. */
  nodeXpath?: string;
}

/**
 * `xmlsec1 --verify` of one signature (the first, or the one at opts.nodeXpath) with the public
 * key of `certPem` (a PEM certificate).
 */
export async function xmlsecVerify(xml: string, certPem: string, opts: VerifyOptions = {}): Promise<XmlsecResult> {
  const ids = opts.idAttr === undefined ? SAML_ID_NODES : typeof opts.idAttr === 'string' ? [opts.idAttr] : opts.idAttr;
  return withTempDir(async (dir) => {
    const doc = path.join(dir, 'doc.xml');
    const cert = path.join(dir, 'cert.pem');
    await Promise.all([writeFile(doc, xml), writeFile(cert, certPem)]);
    const { stdout: _s, ...result } = await run([
      '--verify', '--pubkey-cert-pem', cert,
      ...ids.flatMap((node) => ['--id-attr:ID', node]),
      ...(opts.nodeXpath ? ['--node-xpath', opts.nodeXpath] : []),
      doc,
    ]);
    return result;
  });
}

export interface SignatureCheck {
  /** The signed element: its local name and ID. */
  element: string;
  id: string | null;
  /** The positional XPath of the ds:Signature. */
  xpath: string;
  /** The Reference URI is "#" + the parent's ID (and there is exactly one Reference). */
  referencesParent: boolean;
  xmlsec: XmlsecResult;
  ok: boolean;
}

/**
 * Every ds:Signature of `xml`, each verified by xmlsec1 on its own with `certPem`, and checked to
 * sign its own parent. ok: at least one signature and every one passes.
 */
export async function verifyEachSignature(xml: string, certPem: string, opts: Omit<VerifyOptions, 'nodeXpath'> = {}): Promise<{ ok: boolean; signatures: SignatureCheck[] }> {
  const doc = new DOMParser().parseFromString(xml, 'text/xml');
  const signatures = Array.from(doc.getElementsByTagNameNS(DS_NS, 'Signature')) as unknown as Element[];
  const checks: SignatureCheck[] = [];
  for (const sig of signatures) {
    const parent = sig.parentNode as Element;
    const id = parent.getAttribute?.('ID') || null;
    const refs = Array.from(sig.getElementsByTagNameNS(DS_NS, 'Reference')) as unknown as Element[];
    const referencesParent = refs.length === 1 && id !== null && refs[0]!.getAttribute('URI') === `#${id}`;
    const xpath = positionalXpath(sig);
    const result = await xmlsecVerify(xml, certPem, { ...opts, nodeXpath: xpath });
    checks.push({ element: parent.localName, id, xpath, referencesParent, xmlsec: result, ok: result.ok && referencesParent });
  }
  return { ok: checks.length > 0 && checks.every((c) => c.ok), signatures: checks };
}

/** `/*[1]/*[3]/*[2]`: the element's position among element children at each level. */
function positionalXpath(node: Element): string {
  const steps: string[] = [];
  let current: Node | null = node;
  while (current && current.nodeType === 1) {
    let position = 1;
    for (let s = current.previousSibling; s; s = s.previousSibling) if (s.nodeType === 1) position += 1;
    steps.unshift(`*[${position}]`);
    current = current.parentNode;
  }
  return `/${steps.join('/')}`;
}

/**
 * `xmlsec1 --decrypt --privkey-pem key.pem`: the document with its (first) xenc:EncryptedData
 * replaced by the plaintext, or ok false with xmlsec1's complaint.
 */
export async function xmlsecDecrypt(xml: string, keyPem: string): Promise<XmlsecResult & { xml: string }> {
  return withTempDir(async (dir) => {
    const doc = path.join(dir, 'doc.xml');
    const key = path.join(dir, 'key.pem');
    await Promise.all([writeFile(doc, xml), writeFile(key, keyPem, { mode: 0o600 })]);
    const { stdout, ...result } = await run(['--decrypt', '--privkey-pem', key, doc]);
    return { ...result, xml: stdout };
  });
}
