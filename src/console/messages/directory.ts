// The directory pages' strings (keys console.directory.*).
export const en = {
  'console.directory.title': 'directory',
};

export const zhCN: Record<keyof typeof en, string> = {
  'console.directory.title': 'directory',
};
