// The error catalog's public surface: import from here, not from the files behind it.
export * from './codes.js';
export * from './coffer-error.js';
export * from './articles.js';
export * from './render.js';
