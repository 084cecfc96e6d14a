// ESLint, type-aware (typescript-eslint's strictTypeChecked), run by `npm run
// lint` and by .ci/run before the tests. The TypeScript program is
// tsconfig.test.json's (src/, test/, bench/ through checkJs, demo/, this file
// and vitest.config.ts), so the rules that need types see what `npm run
// typecheck` sees. The JavaScript outside that program (test/fixtures/,
// examples/, .dependency-cruiser.cjs) is linted without types. Layout is left
// to the formatter: no rule here is about spacing or line length.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  globalIgnores(['dist/', 'demo/dist/', '.bench-tmp/']),
  js.configs.recommended,
  tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { project: ['./tsconfig.test.json'], tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // With noUncheckedIndexedAccess, `xs[i]!` after a bounds check or a regex match is the idiom;
      // the rule would turn each into a runtime check that cannot fail.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Numbers in messages ("priority must be an integer 0..99, got 120") are the house style;
      // objects, unknown, nullish values, booleans and regexps in a template are still errors.
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        {
          allowNumber: true,
          allowAny: false,
          allowBoolean: false,
          allowNullish: false,
          allowRegExp: false,
          allowNever: false,
        },
      ],
      // `(e) => reject(e)` and `() => resolve()` are how the code writes callbacks; a void value
      // returned from a block or used inside an expression is still an error.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // The public API is async without an await where a thrown error must arrive as a rejection
      // (Job.complete, Queue.get, ...), and processors are async functions by contract.
      '@typescript-eslint/require-await': 'off',
      // It calls "unnecessary" the checks of input from untyped callers (options === null, a
      // parsed settings file), JSON.stringify's undefined (typed string), isTTY (undefined, typed
      // boolean) and state re-read after an await (this.#closed): each is there on purpose (I9).
      '@typescript-eslint/no-unnecessary-condition': 'off',
      // Likewise String()/Number() coercions of values whose static type is a cast over untrusted
      // input (a JavaScript processor's log line, an error record read from a file).
      '@typescript-eslint/no-unnecessary-type-conversion': 'off',
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // vitest's asymmetric matchers (expect.any, expect.stringMatching, ...) are typed any.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      // An ids[0] that is undefined makes the expectation it is printed in fail on its own.
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        {
          allowNumber: true,
          allowNullish: true,
          allowAny: false,
          allowBoolean: false,
          allowRegExp: false,
          allowNever: false,
        },
      ],
    },
  },
  {
    // Plain JavaScript that no tsconfig covers: run by node as it is, linted without types.
    files: ['test/fixtures/**/*.{js,mjs}', 'examples/**/*.js', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
  },
);
