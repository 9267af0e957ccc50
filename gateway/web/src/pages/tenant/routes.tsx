// The tenant portal's screens: their routes (each a lazy chunk) and their
// menu entries, kept here so App.tsx and Shell.tsx only splice them in.
import { lazy } from 'react';
import type { TFunction } from 'i18next';
import { Link, Route } from 'react-router-dom';

const ResourceRequests = lazy(() => import('./ResourceRequests'));
const Projects = lazy(() => import('./Projects'));
const Members = lazy(() => import('./Members'));
const Tokens = lazy(() => import('./Tokens'));
const Templates = lazy(() => import('./Templates'));
const TemplatePage = lazy(() => import('./Template'));
const Deploy = lazy(() => import('./Deploy'));
const Audit = lazy(() => import('./Audit'));

/** The routes, called as a function inside `<Routes>` (react-router reads the fragment's children). */
export function tenantRoutes() {
  return (
    <>
      <Route path="/resource-requests" element={<ResourceRequests />} />
      <Route path="/projects" element={<Projects />} />
      <Route path="/members" element={<Members />} />
      <Route path="/tokens" element={<Tokens />} />
      <Route path="/templates" element={<Templates />} />
      <Route path="/templates/:id" element={<TemplatePage />} />
      <Route path="/deploy" element={<Deploy />} />
      <Route path="/audit" element={<Audit />} />
    </>
  );
}

const ENTRIES = [
  ['/resource-requests', 'resourceRequests'],
  ['/projects', 'projects'],
  ['/members', 'members'],
  ['/tokens', 'tokens'],
  ['/templates', 'templates'],
  ['/deploy', 'deploy'],
  ['/audit', 'audit'],
] as const;

/** The menu's tenant group; keys are the first path segment, as the shell selects. */
export function tenantMenu(t: TFunction) {
  return [
    {
      key: 'tenant',
      type: 'group' as const,
      label: t('portal.nav.group'),
      children: ENTRIES.map(([path, key]) => ({ key: path, label: <Link to={path}>{t(`portal.nav.${key}`)}</Link> })),
    },
  ];
}
