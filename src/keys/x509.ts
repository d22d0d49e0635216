// @peculiar/x509, ready to use: import it from here, never directly. The library resolves its
// internals through tsyringe, which needs the Reflect metadata API installed before it loads
// (a module importing @peculiar/x509 first fails at load), and it signs through the WebCrypto
// provider it is given: node's own.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };
