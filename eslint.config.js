// Lint config: typescript-eslint's recommended rules with the type-aware promise and
// exhaustiveness checks, a sandbox guard on every file the workflow bundle can reach,
// and the layering of the tree (each folder may import only the folders below it).
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Node built-ins, bare and `node:`-prefixed, with their subpaths (`fs/promises`). */
const BUILTINS = [...new Set(builtinModules.map((m) => m.replace(/^node:/, '')))].flatMap((m) => [m, `${m}/*`, `node:${m}`, `node:${m}/*`]);

/** Folders, from the bottom of the stack up; the regex finds a folder in an import path. */
const FOLDER = {
  shared: '(^|/)src/shared/|^\\.\\./shared/',
  common: '(^|/)common/',
  activities: '(^|/)activities/',
  // The CLI reads the results store (export, status) through its module alone.
  activitiesButStore: '(^|/)activities/(?!store)',
  workflows: '(^|/)workflows/',
  worker: '(^|/)worker/',
  client: '(^|/)client/',
  console: '(^|/)console/',
  dev: '(^|/)dev/',
  provider: '(^|/)provider/',
};

/**
 * What each folder may not import. `types` lists folders it may import types from
 * (erased at build time, so no run-time edge).
 */
const LAYERS = [
  { files: ['src/shared/**/*.ts'], sandbox: true, forbid: ['common', 'activities', 'workflows', 'worker', 'client', 'dev', 'provider'] },
  { files: ['workflows/**/*.ts'], sandbox: true, forbid: ['common', 'worker', 'client', 'dev', 'provider'], types: ['activities'] },
  { files: ['src/common/**/*.ts'], forbid: ['activities', 'workflows', 'worker', 'client', 'dev', 'provider'] },
  { files: ['activities/**/*.ts'], forbid: ['workflows', 'worker', 'client', 'dev', 'provider'] },
  { files: ['src/worker/**/*.ts'], forbid: ['client', 'dev', 'provider'], types: ['workflows'] },
  // The CLI starts the console (`steadfast console`); the console never imports the CLI.
  { files: ['src/client/**/*.ts'], forbid: ['activitiesButStore', 'worker', 'dev', 'provider'], types: ['workflows'] },
  { files: ['src/console/**/*.ts'], forbid: ['activitiesButStore', 'workflows', 'worker', 'client', 'dev', 'provider'] },
  { files: ['src/provider/**/*.ts'], forbid: ['shared', 'common', 'activities', 'workflows', 'worker', 'client', 'dev'] },
];

function layer({ files, sandbox = false, forbid, types = [] }) {
  const patterns = [
    ...forbid.map((f) => ({
      regex: FOLDER[f],
      message: `${files[0].split('/**')[0]} may not import ${f.replace('ButStore', ' (except the store)')}/ (docs/architecture.md, layering).`,
    })),
    ...types.map((f) => ({ regex: FOLDER[f], allowTypeImports: true, message: `${files[0].split('/**')[0]} may import only types from ${f}/.` })),
  ];
  if (sandbox) {
    patterns.push(
      { group: BUILTINS, message: 'This file runs in the deterministic workflow sandbox: no Node built-ins.' },
      {
        group: ['@temporalio/activity', '@temporalio/worker', '@temporalio/client', '@temporalio/testing'],
        message: 'Sandbox code imports @temporalio/workflow and @temporalio/common only.',
      },
    );
  }
  return {
    files,
    rules: {
      'no-restricted-imports': ['error', { patterns }],
      ...(sandbox
        ? {
            'no-restricted-globals': [
              'error',
              { name: 'setTimeout', message: 'Use sleep() from @temporalio/workflow.' },
              { name: 'setInterval', message: 'Workflows are deterministic.' },
              { name: 'process', message: 'Workflows are deterministic: no process.' },
            ],
          }
        : {}),
    },
  };
}

export default tseslint.config(
  // Browser scripts of the console (no Node, no TypeScript project): kept tiny, checked by the browser test.
  { ignores: ['src/console/static/', 'node_modules/', '.tools/', '.cache/', 'data/', 'dist/', 'coverage/', 'bench-results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js', 'bin/*.js'] }, tsconfigRootDir: import.meta.dirname },
      globals: {
        process: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        Buffer: 'readonly',
        fetch: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
    },
  },
  ...LAYERS.map(layer),
);
