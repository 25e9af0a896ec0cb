// List all users, groups and group memberships through @okta/okta-sdk-nodejs.
import okta from '@okta/okta-sdk-nodejs';

const client = new okta.Client({
  orgUrl: process.env.PEER_BASE_URL,
  token: process.env.PEER_TOKEN,
  testing: { disableHttpsCheck: true },
});
let users = 0, groups = 0, memberships = 0;
for await (const _u of await client.userApi.listUsers({ limit: 200 })) users++;
const ids = [];
for await (const g of await client.groupApi.listGroups({ limit: 10000 })) { groups++; ids.push(g.id); }
for (const groupId of ids) {
  for await (const _m of await client.groupApi.listGroupUsers({ groupId, limit: 1000 })) memberships++;
}
console.log(JSON.stringify({ users, groups, memberships }));
