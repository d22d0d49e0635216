// The employee portal's strings (keys portal.*).
export const en = {
  'portal.title': 'My apps',
};

export const zhCN: Record<keyof typeof en, string> = {
  'portal.title': '我的应用',
};
