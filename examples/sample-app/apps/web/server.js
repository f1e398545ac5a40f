'use strict';
// The main app: an HTML page that names the commit it was built from, plus its assets.

const fs = require('node:fs');
const path = require('node:path');
const { countVisit, startService } = require('@sample/common');

const DIST = path.resolve(__dirname, '..', '..', 'dist', 'web');

startService('web', (request, response, { build, data }) => {
  const url = new URL(request.url, 'http://localhost');
  if (url.pathname.startsWith('/assets/')) {
    const name = path.basename(url.pathname);
    const file = path.join(DIST, name);
    if (!fs.existsSync(file)) {
      response.writeHead(404, { 'content-type': 'text/plain' });
      response.end('not found\n');
      return;
    }
    response.writeHead(200, { 'content-type': 'text/css' });
    fs.createReadStream(file).pipe(response);
    return;
  }
  const visits = countVisit(data);
  response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
  response.end(`<!doctype html>
<html><head><title>Preview ${build.revision.slice(0, 12)}</title>
<link rel="stylesheet" href="/assets/${build.stylesheet}"></head>
<body><h1>Sample app</h1>
<p>Built from <code id="revision">${build.revision}</code>.</p>
<p>Visits: <span id="visits">${visits}</span></p></body></html>
`);
});
