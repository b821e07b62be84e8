#!/usr/bin/env node
// Thin launcher so `npm install` exposes the compiled CLI as `coffer`.
import '../dist/src/cli/main.js';
