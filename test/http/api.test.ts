/** The API table (api-table.ts), through fastify.inject and over a real socket. */
import t, { type Test } from 'tap';
import { injectSender, makeApp, socketSender, type Send } from '../helpers/app.js';
import { API_STEPS, DELETE_DISABLED_STEPS, type State, type Step } from './api-table.js';

async function runSteps(tt: Test, send: Send, steps: Step[]): Promise<void> {
  const state: State = {};
  for (const step of steps) {
    const res = await send(step.req(state));
    tt.equal(res.status, step.status, `${step.name}: status`);
    if (step.code) {
      let code: string | undefined;
      try { code = res.json().errors?.[0]?.code; } catch { code = undefined; }
      tt.equal(code, step.code, `${step.name}: OCI error code`);
      tt.match(res.headers['content-type'] ?? '', /application\/json/, `${step.name}: error is JSON`);
    }
    for (const [h, v] of Object.entries(step.headers ?? {})) {
      if (typeof v === 'string') tt.equal(res.headers[h], v, `${step.name}: header ${h}`);
      else tt.match(res.headers[h] ?? '', v, `${step.name}: header ${h}`);
    }
    step.check?.(res, state, tt as never);
    step.save?.(res, state);
  }
}


for (const transport of ['inject', 'socket'] as const) {
  t.test(`OCI API over ${transport}`, async (tt) => {
    const app = makeApp();
    tt.teardown(() => app.close());
    const send = transport === 'inject' ? injectSender(app.app) : (await socketSender(app.app)).send;
    await runSteps(tt, send, API_STEPS);
  });
  t.test(`deletes disabled over ${transport}`, async (tt) => {
    const app = makeApp({ deleteEnabled: false });
    tt.teardown(() => app.close());
    const send = transport === 'inject' ? injectSender(app.app) : (await socketSender(app.app)).send;
    await runSteps(tt, send, DELETE_DISABLED_STEPS);
  });
}
