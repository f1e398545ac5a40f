'use strict';
// The build: record the revision and write a content-hashed stylesheet into dist/.
// Test switches, files in the repository: FAIL_BUILD makes the build fail, CRASH_ON_START
// (one service name per line) makes those services exit at start, PRINT_ENV makes the
// build print its environment, and BUILD_DELAY makes it take that many more seconds.

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');

function readOptional(name) {
  const file = path.join(ROOT, name);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : null;
}

const failure = readOptional('FAIL_BUILD');
if (failure !== null) {
  console.error(`build failed on purpose: ${failure || 'FAIL_BUILD is present'}`);
  process.exit(1);
}

const delay = Number(readOptional('BUILD_DELAY') || 0);
if (delay > 0) {
  // A blocking sleep: the build is a plain script with nothing else to do meanwhile.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.min(delay, 120) * 1000);
}

if (readOptional('PRINT_ENV') !== null) {
  for (const [name, value] of Object.entries(process.env)) {
    console.log(`env ${name}=${value}`);
  }
}

const revision = readOptional('REVISION') || 'unknown';
const css = `body { font-family: sans-serif; } /* ${revision} */\n`;
const hash = crypto.createHash('sha256').update(css).digest('hex').slice(0, 10);
const stylesheet = `app.${hash}.css`;

fs.rmSync(DIST, { recursive: true, force: true });
fs.mkdirSync(path.join(DIST, 'web'), { recursive: true });
fs.writeFileSync(path.join(DIST, 'web', stylesheet), css);

const crashOnStart = (readOptional('CRASH_ON_START') || '').split('\n').filter(Boolean);
const info = { revision, stylesheet, crashOnStart, builtAt: new Date().toISOString() };
fs.writeFileSync(path.join(DIST, 'build.json'), `${JSON.stringify(info, null, 2)}\n`);
console.log(`built ${revision} (stylesheet ${stylesheet})`);
