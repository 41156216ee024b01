// panva/oidc-provider (an OpenID Certified server) configured like a strict real provider, for
// tokenadmin's end-to-end test (tests/e2e/). Not for production: dev interactions log anyone in.
//
// Behaviour, and where it comes from:
// - Refresh tokens only when the scope has `offline_access` AND `prompt=consent` is sent:
//   oidc-provider drops `offline_access` from an authorization request whose prompt lacks
//   `consent` (lib/actions/authorization/scopes.js, OIDC Core §11), and its default
//   `issueRefreshToken` issues one only when the grant's scope has `offline_access`.
// - Refresh tokens rotate on every use (`rotateRefreshToken: true`); presenting a rotated-away
//   (consumed) refresh token revokes the whole grant: built into oidc-provider
//   (lib/actions/grants/refresh_token.js: `if (refreshToken.consumed) … revoke(ctx, grantId)`).
// - Access tokens live ACCESS_TTL seconds (default 60), so refreshing matters.
// - PKCE is required for every client, confidential ones included (default: public only).
// - Revocation (RFC 7009) and introspection (RFC 7662) are on.
//
// Environment: PORT, REDIRECT_URI, CLIENT_ID, CLIENT_SECRET (required); ACCESS_TTL (optional).
// Prints "ready <issuer>" once listening. Test-only route: GET /_stats → counters as JSON.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`server.js: ${name} is not set`);
    process.exit(2);
  }
  return value;
}

const PORT = Number(required('PORT'));
const REDIRECT_URI = required('REDIRECT_URI');
const CLIENT_ID = required('CLIENT_ID');
const CLIENT_SECRET = required('CLIENT_SECRET');
const ACCESS_TTL = Number(process.env.ACCESS_TTL || 60);
const ISSUER = `http://127.0.0.1:${PORT}`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e', use: 'sig', alg: 'RS256' };

const stats = {
  authorization_code: 0, // token endpoint requests with grant_type=authorization_code
  refresh_token: 0, // token endpoint requests with grant_type=refresh_token
  refresh_token_ok: 0,
  refresh_token_errors: {}, // error code → count
  grants_revoked: 0, // includes revocation caused by refresh-token reuse
};

const provider = new Provider(ISSUER, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: [REDIRECT_URI],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  // Any login succeeds; the account id is what was typed in the login box.
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.test`, email_verified: true };
      },
    };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  scopes: ['openid', 'offline_access', 'email'],
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: ACCESS_TTL,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 3600,
    Session: 24 * 3600,
    Grant: 14 * 24 * 3600,
    RefreshToken: 14 * 24 * 3600,
  },
});

provider.on('grant.revoked', () => {
  stats.grants_revoked += 1;
  console.log('grant revoked');
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/_stats') {
    ctx.body = stats;
    return;
  }
  await next();
  if (ctx.oidc?.route === 'token') {
    const grantType = ctx.oidc.params?.grant_type;
    const outcome = ctx.status === 200 ? 'ok' : ctx.body?.error || String(ctx.status);
    if (grantType === 'authorization_code') stats.authorization_code += 1;
    if (grantType === 'refresh_token') {
      stats.refresh_token += 1;
      if (outcome === 'ok') stats.refresh_token_ok += 1;
      else stats.refresh_token_errors[outcome] = (stats.refresh_token_errors[outcome] || 0) + 1;
    }
    console.log(`token grant_type=${grantType} -> ${outcome}`);
  }
});

const server = provider.listen(PORT, '127.0.0.1', () => {
  console.log(`ready ${ISSUER}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
