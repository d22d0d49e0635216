// Page strings in English and Simplified Chinese. Keys are stable; templates call t('key').
export const LOCALES = ['en', 'zh-CN'] as const;
export type Locale = (typeof LOCALES)[number];

const en = {
  'lang': 'en',
  'signin.title': 'Sign in',
  'signin.to_app': 'to continue to {app}',
  'signin.login': 'Username or email',
  'signin.password': 'Password',
  'signin.submit': 'Sign in',
  'signin.failed': 'The username or password is incorrect.',
  'signin.throttled': 'Too many failed sign-ins. Try again in {minutes} minutes.',
  'signin.cancel': 'Cancel',
  'consent.title': 'Allow access',
  'consent.intro': '{app} wants to access your OneID account.',
  'consent.scopes': 'It will be able to see:',
  'consent.allow': 'Allow',
  'consent.deny': 'Deny',
  'scope.openid': 'Your user id',
  'scope.profile': 'Your name, username and language',
  'scope.email': 'Your email address',
  'scope.offline_access': 'Stay connected while you are away',
  'scope.groups': 'The groups you belong to',
  'scope.roles': 'Your roles in this app',
  'noaccess.title': 'No access',
  'noaccess.body': 'You have no access to {app}. Ask your administrator.',
  'noaccess.signed_in_as': 'You are signed in as {user}.',
  'noaccess.back': 'Return to {app}',
  'error.title': 'Something went wrong',
  'error.generic': 'The request could not be completed.',
  'error.request_id': 'Reference',
  'error.back': 'Go back to the application and try again.',
  'logout.title': 'Sign out',
  'logout.question': 'Do you want to sign out of OneID on {host}?',
  'logout.yes': 'Yes, sign me out',
  'logout.no': 'No, stay signed in',
  'loggedout.title': 'Signed out',
  'loggedout.body': 'You have signed out.',
  'setup.title': 'Set up OneID',
  'setup.intro': 'Create the first administrator account. This link works once.',
  'setup.username': 'Username',
  'setup.email': 'Email',
  'setup.name': 'Full name',
  'setup.password': 'Password (at least 8 characters)',
  'setup.submit': 'Create administrator',
  'setup.done': 'The administrator {username} has been created. You can now sign in to your apps with it.',
  'setup.invalid': 'This setup link is invalid, expired or already used.',
  'csrf.invalid': 'Your form has expired. Go back, reload the page and try again.',
  'authorize.too_large': 'The sign-in request from the application is too large. Tell the application\'s developer.',
  'authorize.too_many': 'Too many sign-in requests came from your network. Wait a minute and try again.',
} as const;

export type MessageKey = keyof typeof en;

const zhCN: Record<MessageKey, string> = {
  'lang': 'zh-CN',
  'signin.title': '登录',
  'signin.to_app': '以继续使用 {app}',
  'signin.login': '用户名或邮箱',
  'signin.password': '密码',
  'signin.submit': '登录',
  'signin.failed': '用户名或密码不正确。',
  'signin.throttled': '登录失败次数过多。请在 {minutes} 分钟后重试。',
  'signin.cancel': '取消',
  'consent.title': '授权访问',
  'consent.intro': '{app} 请求访问您的 OneID 帐户。',
  'consent.scopes': '它将能够查看：',
  'consent.allow': '允许',
  'consent.deny': '拒绝',
  'scope.openid': '您的用户 ID',
  'scope.profile': '您的姓名、用户名和语言',
  'scope.email': '您的电子邮件地址',
  'scope.offline_access': '在您离开时保持连接',
  'scope.groups': '您所属的群组',
  'scope.roles': '您在此应用中的角色',
  'noaccess.title': '无权访问',
  'noaccess.body': '您无权访问 {app}。请联系您的管理员。',
  'noaccess.signed_in_as': '您当前登录的帐户是 {user}。',
  'noaccess.back': '返回 {app}',
  'error.title': '出错了',
  'error.generic': '无法完成该请求。',
  'error.request_id': '参考编号',
  'error.back': '请返回应用程序后重试。',
  'logout.title': '退出登录',
  'logout.question': '要退出 {host} 上的 OneID 吗？',
  'logout.yes': '是，退出登录',
  'logout.no': '否，保持登录',
  'loggedout.title': '已退出',
  'loggedout.body': '您已退出登录。',
  'setup.title': '设置 OneID',
  'setup.intro': '创建第一个管理员帐户。此链接只能使用一次。',
  'setup.username': '用户名',
  'setup.email': '电子邮件',
  'setup.name': '全名',
  'setup.password': '密码（至少 8 个字符）',
  'setup.submit': '创建管理员',
  'setup.done': '管理员 {username} 已创建。现在可以用它登录您的应用。',
  'setup.invalid': '此设置链接无效、已过期或已被使用。',
  'csrf.invalid': '表单已过期。请返回、刷新页面后重试。',
  'authorize.too_large': '应用发来的登录请求过大。请告知该应用的开发者。',
  'authorize.too_many': '来自您所在网络的登录请求过多。请稍候一分钟后重试。',
};

const CATALOG: Record<Locale, Record<MessageKey, string>> = { en, 'zh-CN': zhCN };

export function translate(locale: Locale, key: string, vars: Record<string, unknown> = {}): string {
  const text = CATALOG[locale][key as MessageKey] ?? CATALOG.en[key as MessageKey] ?? key;
  return text.replace(/\{(\w+)\}/g, (_m, name: string) => String(vars[name] ?? ''));
}

/** Picks a supported locale from ui_locales (space-separated, in order) or Accept-Language. */
export function pickLocale(uiLocales: string | undefined, acceptLanguage: string | undefined): Locale {
  const candidates: string[] = [];
  if (uiLocales) candidates.push(...uiLocales.split(/\s+/));
  if (acceptLanguage) {
    const ranked = acceptLanguage.split(',').map((part, index) => {
      const [tag, ...params] = part.trim().split(';');
      const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
      return { tag: (tag ?? '').trim(), q: q ? Number(q.slice(2)) || 0 : 1, index };
    }).filter((e) => e.tag && e.q > 0).sort((a, b) => b.q - a.q || a.index - b.index);
    candidates.push(...ranked.map((e) => e.tag));
  }
  for (const candidate of candidates) {
    const lower = candidate.toLowerCase();
    if (lower.startsWith('zh')) {
      // Traditional-script variants are not translated yet; fall through to the next preference.
      if (/^zh(-hans)?(-cn|-sg)?$/.test(lower) || lower === 'zh-hans-cn') return 'zh-CN';
      continue;
    }
    if (lower === 'en' || lower.startsWith('en-')) return 'en';
  }
  return 'en';
}
