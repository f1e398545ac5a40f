'use strict';
// Shared by the three services: command line, build info, data directory, health path.

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');

function parsePort(argv) {
  const index = argv.indexOf('--port');
  const port = Number(index >= 0 ? argv[index + 1] : NaN);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error('usage: server.js --port PORT (1-65535)');
    process.exit(2);
  }
  return port;
}

function readBuildInfo() {
  const file = path.join(ROOT, 'dist', 'build.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    console.error(`missing build output ${file}: run the build first (${error.message})`);
    process.exit(1);
  }
}

// Each service keeps its state in its own data directory, the only place it may write.
// PREVIEW_DATA_DIR is that directory when a preview runs the service.
function dataDirectory(service) {
  const dir = process.env.PREVIEW_DATA_DIR || path.join(ROOT, 'data', service);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

function countVisit(dir) {
  const file = path.join(dir, 'visits');
  let visits = 0;
  try {
    visits = Number(fs.readFileSync(file, 'utf8')) || 0;
  } catch {
    // The first visit creates the file.
  }
  visits += 1;
  fs.writeFileSync(file, String(visits));
  return visits;
}

function startService(name, handler, onUpgrade) {
  const port = parsePort(process.argv);
  const build = readBuildInfo();
  if (build.crashOnStart && build.crashOnStart.includes(name)) {
    console.error(`${name}: refusing to start, this build marks it as crashing on start`);
    process.exit(1);
  }
  const data = dataDirectory(name);
  const server = http.createServer((request, response) => {
    if (request.url === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end('ok\n');
      return;
    }
    handler(request, response, { build, data });
  });
  if (onUpgrade) {
    server.on('upgrade', (request, socket) => onUpgrade(request, socket, { build, data }));
  }
  server.listen(port, '127.0.0.1', () => {
    console.log(`${name} serving ${build.revision} on 127.0.0.1:${port}`);
  });
}

module.exports = { countVisit, startService };
