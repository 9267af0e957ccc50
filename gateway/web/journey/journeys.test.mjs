// Every browser journey, in this order in one process: the portal's journey
// runs first, as its dashboard shows the first tenant there is (its own).
import './portal.test.mjs';
import './console.test.mjs';
