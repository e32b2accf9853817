// The runtime's name and version, as its protocol hello and its messages give them.
export const NAME = 'sbif-js';
export const VERSION = '0.2.0';
