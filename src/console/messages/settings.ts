// The settings pages' strings (keys console.settings.*).
export const en = {
  'console.settings.title': 'settings',
};

export const zhCN: Record<keyof typeof en, string> = {
  'console.settings.title': 'settings',
};
