// `oneid scim-tokens ...`
import { command, type CommandDef } from './command.ts';

export const scimCommands: Record<string, CommandDef> = {
  'scim-tokens create': command({
    summary: 'Create a SCIM token for a provisioning client (an HR system). Prints the token once.',
    options: {
      name: { type: 'string', required: true, value: 'NAME', help: 'what the token is for' },
      department: { type: 'id', value: 'DEPARTMENT_ID', help: 'limit the token to this department and those under it', field: 'departmentId' },
    },
    run: async (o, { services, actor }) => {
      const { token, secret } = await services.scimTokens.create({ name: o.name, departmentId: o.department ?? null }, actor);
      return { id: token.id, token: secret, name: token.name, departmentId: token.departmentId };
    },
  }),
  'scim-tokens list': command({
    summary: 'List SCIM tokens (never their secrets).',
    options: {},
    run: async (_o, { services }) => ({ items: await services.scimTokens.list() }),
  }),
  'scim-tokens revoke': command({
    summary: 'Revoke a SCIM token: its client is refused from then on.',
    options: { id: { type: 'id', required: true, value: 'TOKEN_ID', help: 'the token' } },
    run: (o, { services, actor }) => services.scimTokens.revoke(o.id, actor),
  }),
};
