// The apps pages' strings (keys console.apps.*).
export const en = {
  'console.apps.title': 'apps',
};

export const zhCN: Record<keyof typeof en, string> = {
  'console.apps.title': 'apps',
};
