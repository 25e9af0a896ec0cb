// List all users, groups and group members through @microsoft/microsoft-graph-client.
// The emulator is served over https with a private CA (NODE_EXTRA_CA_CERTS); the token comes from
// its client-credentials endpoint, as from login.microsoftonline.com.
import { Client } from '@microsoft/microsoft-graph-client';

const base = process.env.PEER_BASE_URL; // https://localhost:PORT
const form = new URLSearchParams({
  grant_type: 'client_credentials',
  client_id: process.env.PEER_CLIENT_ID,
  client_secret: process.env.PEER_CLIENT_SECRET,
  scope: 'https://graph.microsoft.com/.default',
});
const tok = await fetch(`${base}/${process.env.PEER_TENANT_ID}/oauth2/v2.0/token`, { method: 'POST', body: form });
if (!tok.ok) throw new Error(`token: ${tok.status} ${await tok.text()}`);
const { access_token: token } = await tok.json();

const client = Client.init({
  authProvider: (done) => done(null, token),
  baseUrl: `${base}/`,
  customHosts: new Set([new URL(base).hostname]),
});

async function drain(path) {
  const items = [];
  let page = await client.api(path).get();
  for (;;) {
    items.push(...(page.value ?? []));
    const next = page['@odata.nextLink'];
    if (!next) return items;
    page = await client.api(next).get();
  }
}

const users = await drain('/users?$top=999');
const groups = await drain('/groups?$top=999');
let memberships = 0;
for (const g of groups) memberships += (await drain(`/groups/${g.id}/members`)).length;
console.log(JSON.stringify({ users: users.length, groups: groups.length, memberships }));
