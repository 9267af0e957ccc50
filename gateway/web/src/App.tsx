import { lazy, Suspense } from 'react';
import { Spin } from 'antd';
import { Navigate, Route, Routes, useLocation } from 'react-router-dom';
import { useSession } from './session';
import { tenantRoutes } from './pages/tenant/routes';

// Each screen is its own chunk, the login page and the shell too: the first
// screen loads only what it shows (the initial JavaScript's budget is 300 KB
// gzipped, checked by the browser journey).
// The login page is the first screen of anyone not logged in: its chunk
// loads while the session is asked for, not after the answer says so.
const loginPage = import('./pages/Login');
const Login = lazy(() => loginPage);
const Shell = lazy(() => import('./Shell'));
const Dashboard = lazy(() => import('./pages/Dashboard'));
const Applications = lazy(() => import('./pages/Applications'));
const ApplicationPage = lazy(() => import('./pages/Application'));
const Clusters = lazy(() => import('./pages/admin/Clusters'));
const Requests = lazy(() => import('./pages/admin/Requests'));
// Config center, images, pipelines and the rest of the admin console.
const ConfigSets = lazy(() => import('./pages/config/ConfigSets'));
const ConfigSet = lazy(() => import('./pages/config/ConfigSet'));
const Images = lazy(() => import('./pages/images/Images'));
const Repository = lazy(() => import('./pages/images/Repository'));
const Pipelines = lazy(() => import('./pages/pipelines/Pipelines'));
const PipelineRun = lazy(() => import('./pages/pipelines/Run'));
const TenantsAdmin = lazy(() => import('./pages/admin/Tenants'));
const Failovers = lazy(() => import('./pages/admin/Failovers'));
const Registries = lazy(() => import('./pages/admin/Registries'));
const Runners = lazy(() => import('./pages/admin/Runners'));
const Audit = lazy(() => import('./pages/admin/Audit'));

const Refusal = lazy(() => import('./pages/Refusal'));

/**
 * The shell only for a logged-in user; anyone else goes to the login page
 * before the shell's code is even loaded (it is not part of the first screen).
 */
function LoggedIn() {
  const { whoami, loading, error } = useSession();
  const location = useLocation();
  if (loading) return <Spin fullscreen />;
  if (!whoami && !error) {
    const returnTo = location.pathname + location.search;
    return <Navigate to={`/login?return_to=${encodeURIComponent(returnTo)}`} replace />;
  }
  return <Shell />;
}

function AdminOnly({ children }: { children: JSX.Element }) {
  const { whoami } = useSession();
  if (!whoami?.platform_admin) return <Refusal status="403" />;
  return children;
}

export default function App() {
  return (
    <Suspense fallback={<Spin fullscreen />}>
      <Routes>
      <Route path="/login" element={<Login />} />
      <Route element={<LoggedIn />}>
        <Route index element={<Navigate to="/dashboard" replace />} />
        <Route path="/dashboard" element={<Dashboard />} />
        <Route path="/applications" element={<Applications />} />
        <Route path="/applications/:id" element={<ApplicationPage />} />
        {tenantRoutes()}
        <Route path="/admin/clusters" element={<AdminOnly><Clusters /></AdminOnly>} />
        <Route path="/admin/requests" element={<AdminOnly><Requests /></AdminOnly>} />
        <Route path="/config" element={<ConfigSets />} />
        <Route path="/config/:id" element={<ConfigSet />} />
        <Route path="/images" element={<Images />} />
        <Route path="/images/:id" element={<Repository />} />
        <Route path="/pipelines" element={<Pipelines />} />
        <Route path="/pipelines/runs/:id" element={<PipelineRun />} />
        <Route path="/admin/tenants" element={<AdminOnly><TenantsAdmin /></AdminOnly>} />
        <Route path="/admin/failovers" element={<AdminOnly><Failovers /></AdminOnly>} />
        <Route path="/admin/registries" element={<AdminOnly><Registries /></AdminOnly>} />
        <Route path="/admin/runners" element={<AdminOnly><Runners /></AdminOnly>} />
        <Route path="/admin/audit" element={<AdminOnly><Audit /></AdminOnly>} />
        <Route path="*" element={<Refusal status="404" />} />
      </Route>
      </Routes>
    </Suspense>
  );
}
