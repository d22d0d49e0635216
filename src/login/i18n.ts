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
  'consent.admin_api': '{app} also asks to use the OneID admin API on your behalf: it could do whatever your administrator roles allow (for example manage people, apps or access). Allow only if you trust it with that.',
  'select.title': 'Choose an account',
  'select.signed_in_as': 'You are signed in as {name} ({user}).',
  'select.continue': 'Continue as {user}',
  'select.another': 'Use another account',
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
  'error.developer_details': 'Details for the app\'s developer',
  'error.unknown_client': 'The app that sent you here is not registered with OneID, so you cannot sign in to it here.',
  'error.redirect_uri': 'The app that sent you here asked OneID to send you back to an address the app has not registered. OneID stopped, to keep your sign-in safe.',
  'error.tell_app_admin': 'Go back to the app. If this keeps happening, tell whoever runs the app (show them the details below).',
  'error.expired': 'This sign-in link has expired or was opened in another browser.',
  'error.expired_next': 'Go back to the app and start signing in again.',
  'error.bad_request': 'The app that sent you here made a request OneID cannot accept.',
  'error.bad_request_next': 'Go back to the app and try again. If this keeps happening, tell whoever runs the app.',
  'error.access_denied': 'The sign-in was cancelled or is not allowed.',
  'error.back_to_app': 'Go back to the app you came from.',
  'error.unavailable': 'OneID cannot finish this right now.',
  'error.unavailable_next': 'Wait a moment, then try again. If it keeps failing, tell your IT team and give them the reference below.',
  'error.not_found': 'There is no page at this address.',
  'error.not_found_next': 'Check the address, or go back to the app you came from.',
  'error.rate_limited': 'Too many requests came from your network in a short time.',
  'error.rate_limited_next': 'Wait a few minutes, then try again.',
  'error.forbidden': 'You are not allowed to do this.',
  'error.reload_next': 'Reload the page you came from and try again.',
  'home.title': 'OneID',
  'home.intro': 'OneID is the single sign-in for your organization\'s apps.',
  'home.signed_in_as': 'You are signed in as {user}.',
  'home.sign_out': 'Sign out',
  'home.signed_out': 'You are not signed in.',
  'home.how': 'You normally sign in from an app: open it and choose to sign in, and it brings you here.',
  'home.sign_in': 'Sign in to OneID',
  'home.admin': 'Administrators manage OneID with the oneid command and the admin API.',
  'home.link': 'Go to the OneID start page',
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
  'setup.continue': 'Continue to OneID',
  'setup.error.username': 'Choose another username: letters, digits and the punctuation of email addresses (. _ @ - +), no spaces.',
  'setup.error.email': 'Enter a valid email address.',
  'setup.error.password': 'Choose a password of 8 to 256 characters.',
  'setup.error.name': 'The full name can have at most 200 characters.',
  'setup.error.taken': 'Another account already uses this username or email. Choose another one.',
  'setup.error.generic': 'Check the form and try again.',
  'csrf.invalid': 'Your form has expired. Go back, reload the page and try again.',
  'authorize.too_large': 'The sign-in request from the application is too large.',
  'authorize.too_many': 'Too many sign-in requests came from your network.',
  'authorize.too_many_next': 'Wait a minute and try again.',
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
  'consent.admin_api': '{app} 还请求代表您使用 OneID 管理 API：它将能够执行您的管理员角色所允许的任何操作（例如管理人员、应用或访问权限）。只有在您信任它拥有这些权限时才允许。',
  'select.title': '选择帐户',
  'select.signed_in_as': '您当前登录的帐户是 {name}（{user}）。',
  'select.continue': '以 {user} 继续',
  'select.another': '使用其他帐户',
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
  'error.developer_details': '供应用开发者查看的详细信息',
  'error.unknown_client': '将您带到这里的应用未在 OneID 中注册，因此无法在此登录该应用。',
  'error.redirect_uri': '将您带到这里的应用要求 OneID 把您送回一个该应用未登记的地址。为保护您的登录安全，OneID 已停止。',
  'error.tell_app_admin': '请返回该应用。如果问题持续出现，请告知该应用的管理者（并向其出示下方的详细信息）。',
  'error.expired': '此登录链接已过期，或是在另一个浏览器中打开的。',
  'error.expired_next': '请返回应用，重新开始登录。',
  'error.bad_request': '将您带到这里的应用发出了 OneID 无法接受的请求。',
  'error.bad_request_next': '请返回应用后重试。如果问题持续出现，请告知该应用的管理者。',
  'error.access_denied': '登录已取消或不被允许。',
  'error.back_to_app': '请返回您来自的应用。',
  'error.unavailable': 'OneID 暂时无法完成此操作。',
  'error.unavailable_next': '请稍候再试。如果仍然失败，请联系 IT 部门并提供下方的参考编号。',
  'error.not_found': '此地址没有页面。',
  'error.not_found_next': '请检查地址，或返回您来自的应用。',
  'error.rate_limited': '短时间内来自您网络的请求过多。',
  'error.rate_limited_next': '请等待几分钟后重试。',
  'error.forbidden': '您无权执行此操作。',
  'error.reload_next': '请刷新您来自的页面后重试。',
  'home.title': 'OneID',
  'home.intro': 'OneID 是您所在组织各应用的统一登录。',
  'home.signed_in_as': '您当前登录的帐户是 {user}。',
  'home.sign_out': '退出登录',
  'home.signed_out': '您尚未登录。',
  'home.how': '通常您会从应用中登录：打开应用并选择登录，应用会把您带到这里。',
  'home.sign_in': '登录 OneID',
  'home.admin': '管理员通过 oneid 命令和管理 API 管理 OneID。',
  'home.link': '前往 OneID 首页',
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
  'setup.continue': '继续前往 OneID',
  'setup.error.username': '请换一个用户名：可使用字母、数字及电子邮件地址中的标点（. _ @ - +），不能有空格。',
  'setup.error.email': '请输入有效的电子邮件地址。',
  'setup.error.password': '请设置 8 到 256 个字符的密码。',
  'setup.error.name': '全名最多 200 个字符。',
  'setup.error.taken': '已有其他帐户使用此用户名或电子邮件。请换一个。',
  'setup.error.generic': '请检查表单后重试。',
  'csrf.invalid': '表单已过期。请返回、刷新页面后重试。',
  'authorize.too_large': '应用发来的登录请求过大。',
  'authorize.too_many': '来自您所在网络的登录请求过多。',
  'authorize.too_many_next': '请稍候一分钟后重试。',
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
