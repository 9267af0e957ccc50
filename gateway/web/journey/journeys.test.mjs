// Every browser journey, in this order in one process: the portal's journey
// runs first, as its dashboard shows the first tenant there is (its own);
// the DR journey runs last, as it takes dc1 down for a while.
import './portal.test.mjs';
import './console.test.mjs';
import './failover.test.mjs';
