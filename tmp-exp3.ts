import { Client, Connection } from '@temporalio/client';
const pipeline = { prompt: { template: 'Customer {{name}} with ssn {{ssn}} says: {{text}}' }, providers: [{ name: 'primary', kind: 'openai', model: 'gpt-4o-mini', baseURL: 'http://127.0.0.1:18788/v1', timeout: '2s' }], review: { timeout: '2s', defaultDecision: 'skip' }, retry: { maxAttempts: 2, initialInterval: '100ms' }, secretFields: ['ssn'] };
const connection = await Connection.connect({ address: '127.0.0.1:17233' });
const client = new Client({ connection });
const id = `sec-${Date.now()}`;
const h = await client.workflow.start('batchPipeline', { taskQueue: 'exp3', workflowId: id, args: [{ batchId: id, pipeline, items: [{ id: 'a1', name: 'Ann', ssn: '078-05-1120', text: 'hello' }] }] });
console.log(await h.result());
await connection.close();
