// A real OpenID Connect provider for tests and the demo, on loopback only.
// Usage: node provider.mjs PORT CLIENTS_JSON
// Any login name is accepted (development interactions); the name becomes `sub`. Names starting with
// "admin" carry the entitlement urn:panbroker:role:admin; "op-<facility>-<name>" carry
// urn:panbroker:role:operator:<facility>.
import Provider from 'oidc-provider';

const [port, clientsJson] = process.argv.slice(2);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: JSON.parse(clientsJson),
  pkce: { required: () => true, methods: ['S256'] },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    clientCredentials: { enabled: true },
  },
  scopes: ['openid', 'profile', 'email', 'entitlements', 'offline_access'],
  claims: { openid: ['sub'], profile: ['name'], email: ['email'], entitlements: ['eduperson_entitlement'] },
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => ({
    accountId: id,
    async claims() {
      return {
        sub: id,
        name: `Test user ${id}`,
        email: `${id}@example.org`,
        eduperson_entitlement: [
          ...(id.startsWith('admin') ? ['urn:panbroker:role:admin'] : []),
          // op-<facility>-<name>: the facility is everything between "op-" and the last dash (op-sim-ill-olga)
          ...(id.startsWith('op-') && id.lastIndexOf('-') > 3
            ? [`urn:panbroker:role:operator:${id.slice(3, id.lastIndexOf('-'))}`] : []),
        ],
      };
    },
  }),
  cookies: { keys: ['panbroker-test-only'] },
  ttl: { AccessToken: 600, IdToken: 600, AuthorizationCode: 60, Interaction: 600, Session: 600, Grant: 600 },
});

// The library's built-in pages import a web font from a public CDN: dropped, so that signing in asks
// nothing of any machine but this one (the pages fall back to the system's sans-serif).
const WEB_FONT = /@import url\(https:\/\/fonts\.googleapis\.com[^)]*\);?/g;
provider.use(async (ctx, next) => {
  await next();
  if (typeof ctx.body === 'string' && ctx.body.includes('fonts.googleapis.com')) {
    ctx.body = ctx.body.replace(WEB_FONT, '');
  }
});

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
