#!/usr/bin/env node
// Thin launcher so `npm install` exposes the CLI as `coffer`: the bundle `npm run build` makes
// from the compiled sources (src/cli/build-bundle.mjs says why it is bundled).
import '../dist/bundle/coffer.js';
