import { useState } from 'react';
import { Alert, Button, Card, Divider, Form, Input, Segmented, Space, Typography } from 'antd';
import { useQuery } from '@tanstack/react-query';
import { useTranslation } from 'react-i18next';
import { Navigate, useSearchParams } from 'react-router-dom';
import { api, unwrap } from '../api/client';
import { showProblemOnForm } from '../components/formProblem';
import { LanguageSwitch } from '../components/LanguageSwitch';
import { useSession } from '../session';

type Source = 'local' | 'ldap';

/** Where to go after logging in: a path on this site only. */
export function safeReturnTo(value: string | null): string {
  return value && value.startsWith('/') && !value.startsWith('//') && !value.startsWith('/\\') ? value : '/';
}

export default function Login() {
  const { t } = useTranslation();
  const { whoami, loggedIn } = useSession();
  const [params] = useSearchParams();
  const returnTo = safeReturnTo(params.get('return_to'));
  const [source, setSource] = useState<Source>('local');
  const [form] = Form.useForm<{ username: string; password: string }>();
  const [failure, setFailure] = useState<string>();
  const [busy, setBusy] = useState(false);
  const providers = useQuery({
    queryKey: ['oidc-providers'],
    queryFn: async () => unwrap(await api.GET('/api/v1/login/oidc')),
  });

  if (whoami) return <Navigate to={returnTo} replace />;

  async function submit(values: { username: string; password: string }) {
    setBusy(true);
    setFailure(undefined);
    try {
      const path = source === 'local' ? '/api/v1/login/local' : '/api/v1/login/ldap';
      const started = unwrap(await api.POST(path, { body: values }));
      await loggedIn(started.csrf_token);
    } catch (e) {
      setFailure(showProblemOnForm(form, e, ['username', 'password']));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main style={{ minHeight: '100vh', display: 'grid', placeItems: 'center', background: '#f5f5f5' }}>
      <Card style={{ width: 400 }}>
        <Space style={{ width: '100%', justifyContent: 'space-between' }}>
          <Typography.Title level={1} style={{ fontSize: 22, margin: 0 }}>
            {t('login.title')}
          </Typography.Title>
          <LanguageSwitch />
        </Space>
        <Segmented<Source>
          block
          style={{ margin: '16px 0' }}
          value={source}
          onChange={(value) => {
            setSource(value);
            setFailure(undefined);
          }}
          options={[
            { value: 'local', label: t('login.local') },
            { value: 'ldap', label: t('login.ldap') },
          ]}
        />
        {failure && <Alert type="error" showIcon role="alert" message={failure} style={{ marginBottom: 16 }} />}
        <Form form={form} layout="vertical" onFinish={submit} requiredMark={false}>
          <Form.Item
            name="username"
            label={t('login.username')}
            rules={[{ required: true, message: t('login.required', { what: t('login.username') }) }]}
          >
            <Input autoComplete="username" autoFocus />
          </Form.Item>
          <Form.Item
            name="password"
            label={t('login.password')}
            rules={[{ required: true, message: t('login.required', { what: t('login.password') }) }]}
          >
            <Input.Password autoComplete="current-password" />
          </Form.Item>
          <Button type="primary" htmlType="submit" block loading={busy}>
            {t('login.submit')}
          </Button>
        </Form>
        {(providers.data?.length ?? 0) > 0 && (
          <>
            <Divider plain>{t('login.or')}</Divider>
            <Space direction="vertical" style={{ width: '100%' }}>
              {providers.data?.map((p) => (
                <Button
                  key={p.name}
                  block
                  href={`${p.login_url}${p.login_url.includes('?') ? '&' : '?'}return_to=${encodeURIComponent(returnTo)}`}
                >
                  {t('login.oidc', { name: p.display_name || p.name })}
                </Button>
              ))}
            </Space>
          </>
        )}
      </Card>
    </main>
  );
}
