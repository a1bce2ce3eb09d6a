// Origin: copied from the lab's reference notes, shared/reference/test-peers.md §1 ("oidc-provider 9 (real
// OAuth 2.0 / OIDC authorization server)", server.mjs), behaviour unchanged: only this header was added.
// See README.md here. Used by tests/connectors/test_oauth_peer.py through tests/connectors/oidc_peer.py.
// Minimal real OAuth 2.0 / OIDC authorization server for IR-tool tests.
// node server.mjs   (env: PORT=3000, TLS_PORT=3443, EVENTS=events.jsonl)
import { createHash, X509Certificate } from 'node:crypto';
import { appendFileSync, readFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import Provider, { errors } from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const PORT = Number(process.env.PORT || 3000);
const TLS_PORT = Number(process.env.TLS_PORT || 3443);
const ISSUER = `http://127.0.0.1:${PORT}`;
const EVENTS = process.env.EVENTS || 'events.jsonl';

// Signing key generated at start-up (tokens do not survive a restart; adapter is in-memory anyway).
const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: 'k1', alg: 'ES256', use: 'sig' };

const RESOURCES = {
  'urn:ir:api:opaque': { scope: 'api:read api:write', accessTokenFormat: 'opaque', accessTokenTTL: 600 },
  'urn:ir:api:jwt': { scope: 'api:read api:write', accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'ES256' } } },
};

const configuration = {
  jwks: { keys: [jwk] },
  clients: [
    { // confidential client: client_credentials + refresh_token (+ code for a browser-less scripted login)
      client_id: 'ir-app', client_secret: 'ir-app-secret',
      grant_types: ['client_credentials', 'refresh_token', 'authorization_code'],
      response_types: ['code'], redirect_uris: ['http://127.0.0.1:8080/cb'],
      token_endpoint_auth_method: 'client_secret_basic', scope: 'openid offline_access api:read api:write',
    },
    { // client whose access tokens must be DPoP-bound
      client_id: 'ir-dpop', client_secret: 'ir-dpop-secret', grant_types: ['client_credentials'],
      response_types: [], redirect_uris: [], dpop_bound_access_tokens: true,
    },
    { // client whose access tokens are certificate-bound (RFC 8705), authenticates with a self-signed cert
      client_id: 'ir-mtls', grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
      token_endpoint_auth_method: 'self_signed_tls_client_auth',
      tls_client_certificate_bound_access_tokens: true,
      jwks: existsSync('mtls-client.jwk.json') ? { keys: [JSON.parse(readFileSync('mtls-client.jwk.json', 'utf8'))] } : { keys: [] },
    },
    { // the responder's admin client: may introspect and revoke any client's tokens
      client_id: 'ir-admin', client_secret: 'ir-admin-secret', grant_types: [], response_types: [], redirect_uris: [],
    },
    { // the gateway (resource server) client: may introspect only
      client_id: 'gateway', client_secret: 'gateway-secret', grant_types: [], response_types: [], redirect_uris: [],
    },
  ],
  clientDefaults: { id_token_signed_response_alg: 'ES256', grant_types: ['client_credentials'], response_types: [] },
  clientBasedCORS: () => false,
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'self_signed_tls_client_auth'],
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
  ttl: { ClientCredentials: 600, AccessToken: 600, RefreshToken: 86400 },
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
  features: {
    devInteractions: { enabled: true }, // dev-only login/consent pages (any username works)
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: {
      enabled: true,
      // default policy: only the token's own client may revoke; let the IR admin client revoke anything
      allowedPolicy: async (ctx, client, token) => client.clientId === 'ir-admin' || token.clientId === client.clientId,
    },
    dPoP: { enabled: true },
    mTLS: {
      enabled: true, certificateBoundAccessTokens: true, selfSignedTlsClientAuth: true,
      getCertificate(ctx) {
        const peer = ctx.socket.getPeerCertificate?.(true);
        return peer && peer.raw ? new X509Certificate(peer.raw) : undefined;
      },
      certificateAuthorized: () => false, // only used for tls_client_auth (PKI); self-signed path ignores it
      certificateSubjectMatches: () => false,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf || 'urn:ir:api:opaque',
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => {
        if (RESOURCES[resource]) return { audience: resource, ...RESOURCES[resource] };
        throw new errors.InvalidTarget();
      },
    },
  },
};

const provider = new Provider(ISSUER, configuration);
provider.proxy = false;

// ---- events as JSON lines (never the raw token: an opaque token's jti IS the token) ----
const fp = (v) => (v ? createHash('sha256').update(String(v)).digest('hex').slice(0, 16) : undefined);
const log = (event, extra) => appendFileSync(EVENTS, JSON.stringify({ ts: new Date().toISOString(), event, ...extra }) + '\n');
const TOKEN_KINDS = ['access_token', 'client_credentials', 'refresh_token', 'authorization_code', 'grant'];
for (const kind of TOKEN_KINDS) {
  for (const what of ['saved', 'issued', 'destroyed', 'consumed']) {
    provider.on(`${kind}.${what}`, (t) => log(`${kind}.${what}`, {
      kind: t.kind, client_id: t.clientId, account: t.accountId, grant_id: t.grantId,
      token_fp: kind === 'grant' ? undefined : fp(t.jti), jkt: t.jkt, x5t: t['x5t#S256'],
    }));
  }
}
provider.on('grant.success', (ctx) => log('grant.success', { client_id: ctx.oidc.client?.clientId, gty: ctx.oidc.params?.grant_type, ip: ctx.ip }));
provider.on('grant.revoked', (ctx, grantId) => log('grant.revoked', { client_id: ctx.oidc.client?.clientId, grant_id: grantId }));
for (const ev of ['grant.error', 'introspection.error', 'revocation.error', 'server_error']) {
  provider.on(ev, (ctx, err) => log(ev, { client_id: ctx.oidc?.client?.clientId, error: err.error, detail: err.error_detail || err.error_description || err.message, route: ctx.oidc?.route }));
}

// ---- pre-seeded refresh token (for a refresh flow without a browser login) ----
const client = await provider.Client.find('ir-app');
const grant = new provider.Grant({ clientId: 'ir-app', accountId: 'alice' });
grant.addOIDCScope('openid offline_access');
grant.addResourceScope('urn:ir:api:opaque', 'api:read api:write');
const grantId = await grant.save();
const rt = new provider.RefreshToken({
  client, accountId: 'alice', grantId, gty: 'authorization_code', expiresWithSession: false,
  scope: 'openid offline_access api:read api:write', resource: 'urn:ir:api:opaque',
});
const seeded = await rt.save();
console.log(JSON.stringify({ seeded_refresh_token: seeded, grant_id: grantId }));

// one JSON line per request to an OAuth endpoint (route, client, status) - the "access log" of the AS
provider.use(async (ctx, next) => {
  await next();
  if (ctx.oidc?.route) log('request', { route: ctx.oidc.route, method: ctx.method, status: ctx.status, client_id: ctx.oidc.client?.clientId, ip: ctx.ip, dpop: !!ctx.get('dpop') });
});

const cb = provider.callback();
http.createServer(cb).listen(PORT, '127.0.0.1', () => console.log(`issuer ${ISSUER} listening`));
if (existsSync('tls/server.key')) {
  https.createServer({
    key: readFileSync('tls/server.key'), cert: readFileSync('tls/server.crt'),
    requestCert: true, rejectUnauthorized: false, // the provider itself checks the client cert (self-signed)
  }, cb).listen(TLS_PORT, '127.0.0.1', () => console.log(`mTLS listener https://127.0.0.1:${TLS_PORT}`));
}
