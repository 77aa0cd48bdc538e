/**
 * Native TLS, configured as registry:2's `http.tls`: certificate and key (PEM files), `clientcas`
 * for mutual TLS (a client without a certificate signed by one of them fails the handshake),
 * `minimumtls` and `ciphersuites` (Go's IANA names, mapped to OpenSSL's). The certificate and key
 * are re-read when their files change, so a rotated certificate is served without a restart; an
 * unusable pair (a key that does not match, a half-written file) is logged and the current one
 * stays. (`letsencrypt` needs the internet; the config schema refuses it at start-up.)
 */
import { readFileSync } from 'node:fs';
import type { ServerOptions } from 'node:https';
import { createSecureContext, getCiphers, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { watchPath, type FileWatch } from '../auth/watch.js';

export interface TlsOptions {
  certificate: string;
  key: string;
  /** CA certificate files; when set, clients must present a certificate signed by one of them. */
  clientcas?: readonly string[];
  /** registry:2 spelling: "tls1.2" (default) or "tls1.3". */
  minimumtls?: string;
  /** Go / IANA cipher suite names (TLS 1.2); TLS 1.3 suites are not configurable, as in Go. */
  ciphersuites?: readonly string[];
  /** How often certificate, key and CA files are checked for changes (default 1 s). */
  reloadIntervalMs?: number;
}

/** IANA (Go) names registry:2 accepts -> OpenSSL names. RC4 and 3DES suites are refused. */
const CIPHER_SUITES: Readonly<Record<string, string>> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA256: 'AES128-SHA256',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  // Go's older spellings of the two above.
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
};
const TLS13_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

function readPem(path: string, key: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`http.tls.${key}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function minVersion(value: string | undefined): 'TLSv1.2' | 'TLSv1.3' {
  switch ((value ?? 'tls1.2').toLowerCase()) {
    case 'tls1.2': return 'TLSv1.2';
    case 'tls1.3': return 'TLSv1.3';
    case 'tls1.0':
    case 'tls1.1':
      throw new Error(`http.tls.minimumtls: ${value} is not offered (TLS 1.0 and 1.1 are broken); use tls1.2 or tls1.3`);
    default:
      throw new Error(`http.tls.minimumtls: "${value}" is not one of tls1.2, tls1.3`);
  }
}

function ciphers(suites: readonly string[] | undefined): string | undefined {
  if (!suites || suites.length === 0) return undefined;
  const known = new Set(getCiphers());
  const names = suites.map((s) => {
    const name = CIPHER_SUITES[s];
    if (!name || !known.has(name.toLowerCase())) throw new Error(`http.tls.ciphersuites: "${s}" is not a supported cipher suite (${Object.keys(CIPHER_SUITES).slice(0, 3).join(', ')}, ...)`);
    return name;
  });
  return `${TLS13_SUITES}:${names.join(':')}`;
}

function contextOptions(o: TlsOptions): SecureContextOptions {
  const cipherList = ciphers(o.ciphersuites);
  return {
    cert: readPem(o.certificate, 'certificate'),
    key: readPem(o.key, 'key'),
    minVersion: minVersion(o.minimumtls),
    ...(cipherList ? { ciphers: cipherList, honorCipherOrder: true } : {}),
    ...(o.clientcas && o.clientcas.length > 0 ? { ca: o.clientcas.map((f) => readPem(f, 'clientcas')) } : {}),
  };
}

/** Options for https.createServer; throws one line naming the key on anything unusable. */
export function tlsServerOptions(o: TlsOptions): ServerOptions {
  const context = contextOptions(o);
  try {
    createSecureContext(context);
  } catch (e) {
    throw new Error(`http.tls: the certificate and key cannot be used together: ${(e as Error).message}`);
  }
  const mutual = o.clientcas !== undefined && o.clientcas.length > 0;
  return { ...context, ...(mutual ? { requestCert: true, rejectUnauthorized: true } : {}) };
}

export interface CertificateWatch extends FileWatch {
  /** Reloads into `server` from now on, at once if the files changed since the watch began. */
  serve(server: TlsServer): void;
}

/**
 * Watches certificate, key and client CAs; once `serve` has given it the server, reloads them into
 * it when their files change. Start it before the files are read for the server's options
 * (tlsServerOptions): a change between that read and the listening server is then not missed.
 */
export function watchCertificates(o: TlsOptions, log: Logger): CertificateWatch {
  const files = [o.certificate, o.key, ...(o.clientcas ?? [])];
  let server: TlsServer | undefined;
  let changedBeforeServe = false;
  let timer: NodeJS.Timeout | undefined;
  const reload = () => {
    if (!server) {
      changedBeforeServe = true;
      return;
    }
    const target = server;
    // Certificate and key are often written one after the other: let both land.
    clearTimeout(timer);
    timer = setTimeout(() => {
      try {
        const context = contextOptions(o);
        createSecureContext(context);
        target.setSecureContext(context);
        log.info({ certificate: o.certificate }, 'TLS certificate reloaded');
      } catch (e) {
        log.error({ certificate: o.certificate, err: (e as Error).message }, 'TLS certificate not reloaded; the current one stays');
      }
    }, 200);
    timer.unref();
  };
  const watches = files.map((f) => watchPath(f, o.reloadIntervalMs ?? 1000, reload));
  return {
    serve(s) {
      server = s;
      if (changedBeforeServe) reload();
    },
    close() {
      clearTimeout(timer);
      for (const w of watches) w.close();
    },
  };
}
