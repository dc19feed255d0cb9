// A tiny web app: a greeting at `/`, and at `/facts` what it can see of where it runs.
// Its one dependency, `ms` (from the npm registry), is installed into the image by the build.
const fs = require("fs");
const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 8080);
const version = process.env.SAGACTL_VERSION || "node-web";

http
  .createServer((request, response) => {
    if (request.url === "/facts") {
      const facts = {
        cwd: process.cwd(),
        pid: process.pid,
        processes: fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name)).length,
        uid: process.getuid(),
        probe: process.env.PROBE ? fs.existsSync(process.env.PROBE) : null,
        ms: require("ms/package.json").version,
        uptime: ms(1234000, { long: true }),
        version,
      };
      response.writeHead(200, { "Content-Type": "application/json" });
      response.end(JSON.stringify(facts) + "\n");
      return;
    }
    response.writeHead(200, { "Content-Type": "text/plain" });
    response.end(`hello from ${version}\n`);
  })
  .listen(port, "127.0.0.1");
