'use strict';
// A side app: a JSON API.

const { countVisit, startService } = require('@sample/common');

startService('api', (request, response, { build, data }) => {
  const body = JSON.stringify({
    service: 'api',
    revision: build.revision,
    requests: countVisit(data),
  });
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(`${body}\n`);
});
