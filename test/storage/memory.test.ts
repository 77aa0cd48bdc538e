import t from 'tap';
import { MemoryDriver } from '../../src/storage/drivers/memory.js';
import { driverConformance } from './conformance.js';

driverConformance(t, 'memory', async () => ({ driver: new MemoryDriver(), cleanup: async () => undefined }));
