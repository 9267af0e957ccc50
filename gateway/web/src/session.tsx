// The browser session: who is logged in (GET /api/v1/session), its CSRF
// token for writes, logout, and the tenant and project the user works in.
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, setCsrfToken, unwrap, type Answer } from './api/client';
import { ApiProblem } from './api/problem';

export type Whoami = Answer<'/api/v1/session', 'get'>;

interface Session {
  whoami: Whoami | undefined;
  /** Still asking the gateway who this is. */
  loading: boolean;
  /** Asking failed for another reason than "not logged in". */
  error: unknown;
  tenantId: string | undefined;
  setTenantId: (id: string | undefined) => void;
  projectId: string | undefined;
  setProjectId: (id: string | undefined) => void;
  loggedIn: (csrfToken: string) => Promise<void>;
  logout: () => Promise<void>;
}

const SessionContext = createContext<Session | undefined>(undefined);

const TENANT_KEY = 'paas.tenant';
const PROJECT_KEY = 'paas.project';

function stored(key: string): string | undefined {
  return localStorage.getItem(key) ?? undefined;
}

function store(key: string, value: string | undefined) {
  if (value) localStorage.setItem(key, value);
  else localStorage.removeItem(key);
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const query = useQuery({
    queryKey: ['session'],
    queryFn: async () => {
      try {
        return unwrap(await api.GET('/api/v1/session'));
      } catch (e) {
        if (e instanceof ApiProblem && e.status === 401) return null;
        throw e;
      }
    },
    staleTime: 60_000,
    retry: false,
  });
  const whoami = query.data ?? undefined;
  useEffect(() => {
    if (whoami?.csrf_token) setCsrfToken(whoami.csrf_token);
  }, [whoami?.csrf_token]);

  const [tenantId, setTenant] = useState<string | undefined>(() => stored(TENANT_KEY));
  const [projectId, setProject] = useState<string | undefined>(() => stored(PROJECT_KEY));
  const setTenantId = useCallback((id: string | undefined) => {
    store(TENANT_KEY, id);
    store(PROJECT_KEY, undefined);
    setTenant(id);
    setProject(undefined);
  }, []);
  const setProjectId = useCallback((id: string | undefined) => {
    store(PROJECT_KEY, id);
    setProject(id);
  }, []);

  const loggedIn = useCallback(
    async (csrfToken: string) => {
      setCsrfToken(csrfToken);
      await client.invalidateQueries({ queryKey: ['session'] });
    },
    [client],
  );

  const logout = useCallback(async () => {
    const { data, response } = await api.POST('/api/v1/logout');
    setCsrfToken(undefined);
    client.clear();
    // A session an OIDC provider started ends at the provider too.
    const endSession = response.status === 200 ? data?.end_session_url : undefined;
    if (endSession) window.location.assign(endSession);
    else window.location.assign('/login');
  }, [client]);

  const value = useMemo<Session>(
    () => ({
      whoami,
      loading: query.isPending,
      error: query.error,
      tenantId,
      setTenantId,
      projectId,
      setProjectId,
      loggedIn,
      logout,
    }),
    [whoami, query.isPending, query.error, tenantId, setTenantId, projectId, setProjectId, loggedIn, logout],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside SessionProvider');
  return session;
}
