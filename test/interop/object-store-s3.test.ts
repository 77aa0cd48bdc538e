/** Integration scenarios (object-store-scenarios.ts) with stowage on the s3 driver. */
import t from 'tap';
import { missingStore, startObjectStore, type ObjectStore } from '../helpers/object-stores.js';
import { missingTools } from '../helpers/tools.js';
import { objectStoreSuite } from './object-store-scenarios.js';

const skip = missingTools('skopeo') ?? missingStore('s3');
let store: ObjectStore | undefined;

if (skip) {
  t.test('s3: object-store integration', { skip }, async () => undefined);
} else {
  t.before(async () => { store = await startObjectStore('s3'); });
  t.teardown(async () => store?.stop());
  objectStoreSuite(t, () => store!);
}
