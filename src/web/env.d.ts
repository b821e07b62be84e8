// esbuild bundles imported stylesheets into the page's one CSS file; they export nothing.
declare module '*.css';
