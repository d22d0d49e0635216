// `oneid scim-tokens ...`
import { options, required, type Command } from './command.ts';

export const scimUsage = `
  oneid scim-tokens create --name N [--department ID]
  oneid scim-tokens list
  oneid scim-tokens revoke --id ID`;

export const scimCommands: Record<string, Command> = {
  'scim-tokens create': async (args, { services, actor }) => {
    const o = options(args, { name: { type: 'string' }, department: { type: 'string' } });
    const { token, secret } = await services.scimTokens.create({ name: required(o.name, 'name'), departmentId: o.department ?? null }, actor);
    return { id: token.id, token: secret, name: token.name, departmentId: token.departmentId };
  },
  'scim-tokens list': async (args, { services }) => {
    options(args, {});
    return { items: await services.scimTokens.list() };
  },
  'scim-tokens revoke': async (args, { services, actor }) => {
    const o = options(args, { id: { type: 'string' } });
    return services.scimTokens.revoke(required(o.id, 'id'), actor);
  },
};
