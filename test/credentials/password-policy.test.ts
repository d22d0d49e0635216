import { PasswordPolicy } from '../../src/credentials/password-policy.ts';

describe('PasswordPolicy', () => {
  const policy = new PasswordPolicy(10);

  it('refuses a password shorter than the configured minimum, counting characters as people do', () => {
    expect(policy.check('nine-char')).toBe('too_short');
    expect(policy.check('ten-chars!')).toBeUndefined();
    // Nine emoji are nine characters (18 UTF-16 units): still too short.
    expect(policy.check('🔑'.repeat(9))).toBe('too_short');
    expect(policy.check('密码是一个很长的句子吧')).toBeUndefined();
  });

  it('refuses the common and breached passwords whatever their case', () => {
    expect(policy.check('password123')).toBe('too_common');
    expect(policy.check('PassWord123')).toBe('too_common');
    expect(policy.check('qwertyuiop')).toBe('too_common');
    expect(policy.check('1234567890')).toBe('too_common');
  });

  it('asks for no composition: a long lower-case phrase is fine', () => {
    expect(policy.check('correct horse battery staple')).toBeUndefined();
  });

  it('refuses more than 256 characters', () => {
    expect(policy.check('x'.repeat(257))).toBe('too_long');
  });
});
