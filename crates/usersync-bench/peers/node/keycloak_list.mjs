// List all users, groups (with sub-groups) and group members through @keycloak/keycloak-admin-client.
import KcAdminClient from '@keycloak/keycloak-admin-client';

const kc = new KcAdminClient({ baseUrl: process.env.PEER_BASE_URL, realmName: process.env.PEER_REALM });
await kc.auth({
  grantType: 'client_credentials',
  clientId: process.env.PEER_CLIENT_ID,
  clientSecret: process.env.PEER_CLIENT_SECRET,
});
const max = 1000;
let users = 0;
for (let first = 0; ; first += max) {
  const page = await kc.users.find({ first, max, briefRepresentation: false });
  users += page.length;
  if (page.length === 0) break;
}
const all = [];
const stack = [];
for (let first = 0; ; first += max) {
  const page = await kc.groups.find({ first, max });
  stack.push(...page);
  if (page.length < max) break;
}
while (stack.length) {
  const g = stack.pop();
  all.push(g);
  if (g.subGroupCount > 0) {
    for (let first = 0; ; first += max) {
      const page = await kc.groups.listSubGroups({ parentId: g.id, first, max });
      stack.push(...page);
      if (page.length < max) break;
    }
  }
}
let memberships = 0;
for (const g of all) {
  for (let first = 0; ; first += max) {
    const page = await kc.groups.listMembers({ id: g.id, first, max });
    memberships += page.length;
    if (page.length < max) break;
  }
}
console.log(JSON.stringify({ users, groups: all.length, memberships }));
