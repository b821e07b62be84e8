// `npm run gen:api`: regenerates src/web/api-types.ts from the live OpenAPI document.
import { writeFile } from 'node:fs/promises';
import { API_TYPES_FILE, liveOpenApi, renderApiTypes } from './api-types.mjs';

await writeFile(API_TYPES_FILE, await renderApiTypes(await liveOpenApi()));
console.log(`wrote ${API_TYPES_FILE}`);
