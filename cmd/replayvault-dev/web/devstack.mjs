// The dev stack for the browser tests: `replayvault-dev dev` as a child
// process (REPLAYVAULT_BIN, logs and info file in BROWSER_TEST_OUT).

import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const bin = process.env.REPLAYVAULT_BIN;
const out = process.env.BROWSER_TEST_OUT;

// startDev runs `replayvault-dev dev` on a free port and waits for its info
// file; env adds variables to its environment (and so to its functions').
// stop() interrupts it as Ctrl-C would and resolves to its exit code.
export async function startDev({ env = {} } = {}) {
  const infoPath = join(out, 'dev-info.json');
  const logPath = join(out, 'dev.log');
  rmSync(infoPath, { force: true }); // a previous run's
  const log = openSync(logPath, 'w');
  const child = spawn(bin, ['dev', '--port', '0', '--info-file', infoPath], {
    stdio: ['ignore', log, log],
    env: { ...process.env, ...env },
  });
  closeSync(log);
  let exited = null;
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }));
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);

  const deadline = Date.now() + 180_000;
  while (!existsSync(infoPath)) {
    if (exited) throw new Error(`replayvault-dev dev exited (${JSON.stringify(exited)}) before it was ready; log ${logPath}:\n${readFileSync(logPath, 'utf8')}`);
    if (Date.now() > deadline) throw new Error(`replayvault-dev dev not ready after 180 s; log ${logPath}`);
    await sleep(200);
  }
  const info = JSON.parse(readFileSync(infoPath, 'utf8'));
  return {
    info,
    logPath,
    async stop() {
      if (!exited) child.kill('SIGINT');
      // An unref'd timer: it must not keep the test process alive.
      const result = await Promise.race([exit, sleep(60_000, null, { ref: false })]);
      process.off('exit', killOnExit);
      if (!result) {
        child.kill('SIGKILL');
        throw new Error('replayvault-dev dev did not stop within 60 s of SIGINT');
      }
      return result;
    },
  };
}

