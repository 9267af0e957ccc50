// The frame around every screen once logged in: navigation, the tenant and
// project the user works in, language, who is logged in, logout.
import { Suspense, useEffect } from 'react';
import { Button, Layout, Menu, Select, Space, Spin, Tag, Tooltip, Typography } from 'antd';
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Link, Navigate, Outlet, useLocation } from 'react-router-dom';
import { api, unwrap } from './api/client';
import { LanguageSwitch } from './components/LanguageSwitch';
import { ProblemAlert } from './components/ProblemAlert';
import { tenantMenu } from './pages/tenant/routes';
import { ToneTag } from './components/ToneTag';
import { useSession } from './session';

export function useTenants(enabled: boolean) {
  return useQuery({
    queryKey: ['tenants'],
    enabled,
    queryFn: async () => unwrap(await api.GET('/api/v1/tenants', { params: { query: { limit: 500 } } })).items,
  });
}

function TenantSwitch() {
  const { t } = useTranslation();
  const { whoami, tenantId, setTenantId, projectId, setProjectId } = useSession();
  const tenants = useTenants(!!whoami);
  const projects = useQuery({
    queryKey: ['projects', tenantId],
    enabled: !!tenantId,
    queryFn: async () =>
      unwrap(
        await api.GET('/api/v1/tenants/{id}/projects', {
          params: { path: { id: tenantId! }, query: { limit: 500 } },
        }),
      ).items,
  });
  // The first tenant the user may see, until they pick one; a stored one that is gone is dropped.
  useEffect(() => {
    const items = tenants.data;
    if (!items) return;
    if (!tenantId || !items.some((x) => x.id === tenantId)) setTenantId(items[0]?.id);
  }, [tenants.data, tenantId, setTenantId]);
  return (
    <Space>
      <Select
        aria-label={t('shell.tenant')}
        style={{ width: 180 }}
        loading={tenants.isPending}
        value={tenantId}
        placeholder={t('shell.noTenant')}
        onChange={setTenantId}
        showSearch
        optionFilterProp="label"
        options={tenants.data?.map((x) => ({ value: x.id, label: x.display_name || x.name }))}
      />
      <Select
        aria-label={t('shell.project')}
        style={{ width: 160 }}
        disabled={!tenantId}
        value={projectId ?? ''}
        onChange={(id) => setProjectId(id || undefined)}
        options={[
          { value: '', label: t('shell.allProjects') },
          ...(projects.data?.map((p) => ({ value: p.id, label: p.name })) ?? []),
        ]}
      />
    </Space>
  );
}

export default function Shell() {
  const { t } = useTranslation();
  const { whoami, loading, error, logout } = useSession();
  const location = useLocation();
  if (loading) return <Spin fullscreen tip={t('app.loading')} />;
  if (error) return <ProblemAlert error={error} onRetry={() => window.location.reload()} />;
  if (!whoami) {
    const returnTo = location.pathname + location.search;
    return <Navigate to={`/login?return_to=${encodeURIComponent(returnTo)}`} replace />;
  }
  const section = '/' + (location.pathname.split('/')[1] ?? '');
  const selected = location.pathname.startsWith('/admin/') ? location.pathname : section;
  const items = [
    { key: '/dashboard', label: <Link to="/dashboard">{t('nav.dashboard')}</Link> },
    { key: '/applications', label: <Link to="/applications">{t('nav.applications')}</Link> },
    ...tenantMenu(t),
    { key: '/config', label: <Link to="/config">{t('consoleNav.config')}</Link> },
    { key: '/images', label: <Link to="/images">{t('consoleNav.images')}</Link> },
    { key: '/pipelines', label: <Link to="/pipelines">{t('consoleNav.pipelines')}</Link> },
    ...(whoami.platform_admin
      ? [
          {
            key: 'admin',
            type: 'group' as const,
            label: t('nav.admin'),
            children: [
              { key: '/admin/clusters', label: <Link to="/admin/clusters">{t('nav.clusters')}</Link> },
              { key: '/admin/requests', label: <Link to="/admin/requests">{t('nav.requests')}</Link> },
              { key: '/admin/tenants', label: <Link to="/admin/tenants">{t('consoleNav.tenants')}</Link> },
              { key: '/admin/failovers', label: <Link to="/admin/failovers">{t('consoleNav.failovers')}</Link> },
              { key: '/admin/registries', label: <Link to="/admin/registries">{t('consoleNav.registries')}</Link> },
              { key: '/admin/runners', label: <Link to="/admin/runners">{t('consoleNav.runners')}</Link> },
              { key: '/admin/audit', label: <Link to="/admin/audit">{t('consoleNav.audit')}</Link> },
            ],
          },
        ]
      : []),
  ];
  return (
    <Layout style={{ minHeight: '100vh' }}>
      <Layout.Sider width={220} theme="light" breakpoint="lg" collapsedWidth={0}>
        <div style={{ padding: 16 }}>
          <Typography.Text strong style={{ fontSize: 18 }}>
            {t('app.title')}
          </Typography.Text>
        </div>
        <nav aria-label="main">
          <Menu mode="inline" selectedKeys={[selected]} items={items} />
        </nav>
      </Layout.Sider>
      <Layout>
        <Layout.Header
          style={{ background: '#fff', display: 'flex', alignItems: 'center', justifyContent: 'space-between', gap: 16 }}
        >
          <TenantSwitch />
          <Space>
            <LanguageSwitch />
            {whoami.platform_admin && <Tag>{t('shell.admin')}</Tag>}
            {whoami.break_glass && (
              <Tooltip title={t('consoleNav.breakGlassHelp')}>
                <ToneTag tone="bad" role="note" tabIndex={0} aria-label={`${t('consoleNav.breakGlass')}: ${t('consoleNav.breakGlassHelp')}`}>
                  {t('consoleNav.breakGlass')}
                </ToneTag>
              </Tooltip>
            )}
            <Typography.Text>{whoami.subject}</Typography.Text>
            <Button onClick={() => void logout()}>{t('shell.logout')}</Button>
          </Space>
        </Layout.Header>
        <Layout.Content style={{ padding: 24 }}>
          <main>
            <Suspense fallback={<Spin />}>
              <Outlet />
            </Suspense>
          </main>
        </Layout.Content>
      </Layout>
    </Layout>
  );
}
