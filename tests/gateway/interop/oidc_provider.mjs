// An independent OpenID provider for Keel's JWT interoperability test: panva's oidc-provider,
// on 127.0.0.1 with a free port, issuing JWT access tokens (RFC 9068) by the client credentials
// grant for one resource server, the audience Keel checks.
//
// Written for oidc-provider 8.x (the line that supports Node 18, 20 and 22; 9.x wants Node 22).
// Run from a folder whose node_modules holds oidc-provider. Prints one JSON line on stdout once it
// listens: {"issuer": ..., "token_endpoint": ...}. Stops when stdin closes.
//
// Environment: KEEL_AUDIENCE (resource indicator), KEEL_CLIENT_ID, KEEL_CLIENT_SECRET,
// KEEL_TENANT (put in a `tenant` claim), KEEL_ALG (RS256, PS256, ES256 or EdDSA).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const audience = process.env.KEEL_AUDIENCE;
const clientId = process.env.KEEL_CLIENT_ID;
const clientSecret = process.env.KEEL_CLIENT_SECRET;
const tenant = process.env.KEEL_TENANT;
const alg = process.env.KEEL_ALG || 'RS256';

function signingKey(kid, type, options) {
  const { privateKey } = generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig' };
}

const keys = [
  signingKey('rsa-1', 'rsa', { modulusLength: 2048 }),
  signingKey('ec-1', 'ec', { namedCurve: 'P-256' }),
  signingKey('ed-1', 'ed25519', {}),
];

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['runs:read', 'runs:write'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => {
          if (resourceIndicator !== audience) throw new Provider.errors.InvalidTarget();
          return {
            scope: 'runs:read runs:write',
            audience,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
    extraTokenClaims: () => ({ tenant }),
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, token_endpoint: `${issuer}/token` })}\n`);
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
