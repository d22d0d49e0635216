// Which language a sign-in page speaks, from ui_locales (the app's choice) and Accept-Language
// (the browser's).
import { pickLocale, translate } from '../../src/login/i18n.ts';

describe('pickLocale', () => {
  it('speaks English when nothing is asked for', () => {
    expect(pickLocale(undefined, undefined)).toBe('en');
    expect(pickLocale('', '')).toBe('en');
  });

  it('speaks English when nothing asked for is supported', () => {
    expect(pickLocale('fr de', 'ja,ko;q=0.8')).toBe('en');
    expect(pickLocale(undefined, '*')).toBe('en');
  });

  it('takes the first supported tag of ui_locales, in order', () => {
    expect(pickLocale('zh-CN en', undefined)).toBe('zh-CN');
    expect(pickLocale('en zh-CN', undefined)).toBe('en');
    expect(pickLocale('fr zh-CN en', undefined)).toBe('zh-CN');
    expect(pickLocale('fr en-GB zh-CN', undefined)).toBe('en');
  });

  it('lets ui_locales win over Accept-Language', () => {
    expect(pickLocale('en', 'zh-CN,zh;q=0.9')).toBe('en');
    expect(pickLocale('zh-CN', 'en-US,en;q=0.9')).toBe('zh-CN');
  });

  it('falls back to Accept-Language when ui_locales names nothing supported', () => {
    expect(pickLocale('fr', 'zh-CN,en;q=0.5')).toBe('zh-CN');
    expect(pickLocale('fr', 'en,zh-CN;q=0.5')).toBe('en');
  });

  it('respects q-values in Accept-Language, not the order they are written in', () => {
    expect(pickLocale(undefined, 'en;q=0.5, zh-CN;q=0.9')).toBe('zh-CN');
    expect(pickLocale(undefined, 'zh-CN;q=0.4,en;q=0.8')).toBe('en');
    expect(pickLocale(undefined, 'zh-CN;q=0, en;q=0.1')).toBe('en'); // q=0 means "not this one"
    expect(pickLocale(undefined, 'en;q=0, zh-CN;q=0.1')).toBe('zh-CN');
  });

  it('keeps the written order between tags of equal q', () => {
    expect(pickLocale(undefined, 'zh-CN, en')).toBe('zh-CN');
    expect(pickLocale(undefined, 'en, zh-CN')).toBe('en');
    expect(pickLocale(undefined, 'en;q=0.7, zh-CN;q=0.7')).toBe('en');
  });

  it('understands the usual ways of writing Simplified Chinese, in any case', () => {
    for (const tag of ['zh', 'zh-CN', 'zh-cn', 'ZH-CN', 'zh-Hans', 'zh-Hans-CN', 'zh-SG']) {
      expect([tag, pickLocale(tag, undefined)]).toEqual([tag, 'zh-CN']);
      expect([tag, pickLocale(undefined, tag)]).toEqual([tag, 'zh-CN']);
    }
  });

  it('does not show Simplified Chinese to someone asking for Traditional Chinese', () => {
    for (const tag of ['zh-TW', 'zh-HK', 'zh-Hant', 'zh-Hant-TW', 'zh-MO']) {
      expect([tag, pickLocale(tag, undefined)]).toEqual([tag, 'en']);
      expect([tag, pickLocale(undefined, tag)]).toEqual([tag, 'en']);
    }
    // ...but moves on to their next preference.
    expect(pickLocale('zh-TW zh-CN', undefined)).toBe('zh-CN');
    expect(pickLocale(undefined, 'zh-TW,zh;q=0.9,en;q=0.8')).toBe('zh-CN');
    expect(pickLocale(undefined, 'zh-TW,en;q=0.9,zh-CN;q=0.8')).toBe('en');
  });

  it('takes any English region as English', () => {
    expect(pickLocale('en-GB', 'zh-CN')).toBe('en');
    expect(pickLocale(undefined, 'en-US,zh-CN;q=0.9')).toBe('en');
  });

  it('tolerates malformed Accept-Language headers', () => {
    expect(pickLocale(undefined, ',,;q=abc, zh-CN;q=0.5')).toBe('zh-CN');
    expect(pickLocale(undefined, 'zh-CN;q=banana, en;q=0.5')).toBe('en');
  });
});

describe('translate', () => {
  it('fills placeholders and falls back to the key for unknown messages', () => {
    expect(translate('en', 'signin.to_app', { app: 'Wiki' })).toBe('to continue to Wiki');
    expect(translate('zh-CN', 'signin.to_app', { app: 'Wiki' })).toBe('以继续使用 Wiki');
    expect(translate('zh-CN', 'no.such.key')).toBe('no.such.key');
  });
});
