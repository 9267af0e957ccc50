import { describe, expect, it } from 'vitest';
import { auditPage } from './Audit';
import { canarySteps, placementBody, problemStep, strategyBody } from './deployment';
import { groupSubject, subjectSource } from './Members';
import { dataCentresOf } from './ResourceRequests';
import { editorField } from './Template';

describe('the deploy body', () => {
  it('places on the clusters picked, with replicas only where given, and the DR tier', () => {
    expect(
      placementBody({
        clusters: ['dc1-prod', 'dc2-dr'],
        replicas: { 'dc1-prod': 3, 'dc2-dr': null },
        dr_tier: 'auto-failover',
        toleration_seconds: 30,
        singleton: false,
      }),
    ).toEqual({
      explicit: [{ cluster: 'dc1-prod', replicas: 3 }, { cluster: 'dc2-dr' }],
      dr_tier: 'auto-failover',
      toleration_seconds: 30,
    });
    // A manual tier has nothing to tolerate.
    expect(placementBody({ clusters: ['a'], dr_tier: 'manual', toleration_seconds: 10, singleton: true })).toEqual({
      explicit: [{ cluster: 'a' }],
      dr_tier: 'manual',
      singleton: true,
    });
  });

  it('writes each strategy as the API reads it', () => {
    expect(strategyBody({ type: 'rolling', max_surge: '25%', max_unavailable: '0' }, [])).toEqual({
      type: 'rolling',
      max_surge: '25%',
      max_unavailable: 0,
    });
    expect(strategyBody({ type: 'canary', steps: '5, 25 50,100', pause_seconds: 0, pause: true }, [])).toEqual({
      type: 'canary',
      steps: [5, 25, 50, 100],
      pause_seconds: 0,
      pause: true,
    });
    expect(strategyBody({ type: 'ab', match_kind: 'cookie', match_name: 'v', match_value: 'b' }, [])).toEqual({
      type: 'ab',
      match: { cookie: { name: 'v', value: 'b' } },
    });
    expect(strategyBody({ type: 'gray', gray_by: 'cluster' }, ['dc2-dr', 'dc1-prod'])).toEqual({
      type: 'gray',
      by: 'cluster',
      order: ['dc2-dr', 'dc1-prod'],
      pause: 'manual',
    });
    expect(strategyBody({ type: 'blue-green' }, [])).toEqual({ type: 'blue-green' });
    expect(canarySteps('')).toEqual([]);
  });

  it('sends an API problem back to the step and field it names', () => {
    expect(problemStep('parameters.tag')).toEqual({ step: 'parameters', name: ['parameters', 'tag'] });
    expect(problemStep('name')).toEqual({ step: 'version', name: ['name'] });
    expect(problemStep('placement.explicit[0].cluster')).toEqual({ step: 'placement', name: ['clusters'] });
    expect(problemStep('strategy.steps')).toEqual({ step: 'strategy', name: ['strategy', 'type'] });
    expect(problemStep(undefined)).toEqual({ step: 'strategy' });
  });
});

describe('group bindings', () => {
  it('name their source', () => {
    expect(subjectSource('ldap:cn=ops,ou=groups,dc=corp')).toEqual({ source: 'ldap', name: 'cn=ops,ou=groups,dc=corp' });
    expect(subjectSource('oidc:corp:team-pay-dev')).toEqual({ source: 'oidc', provider: 'corp', name: 'team-pay-dev' });
    expect(subjectSource('someone')).toEqual({ source: '', name: 'someone' });
    expect(groupSubject('ldap', ' cn=ops,dc=corp ')).toBe('ldap:cn=ops,dc=corp');
    expect(groupSubject('oidc:corp', 'team-pay-dev')).toBe('oidc:corp:team-pay-dev');
  });
});

describe('the request form', () => {
  const cluster = (name: string, data_centre: string, network_domain: 'core' | 'dmz') =>
    ({ name, data_centre, network_domain }) as Parameters<typeof dataCentresOf>[0][number];

  it('lists data centres with their clusters, narrowed by network domain', () => {
    const clusters = [cluster('dc2-a', 'dc2', 'core'), cluster('dc1-a', 'dc1', 'core'), cluster('dc1-b', 'dc1', 'dmz')];
    expect(dataCentresOf(clusters, undefined)).toEqual([
      { name: 'dc1', clusters: ['dc1-a', 'dc1-b'] },
      { name: 'dc2', clusters: ['dc2-a'] },
    ]);
    expect(dataCentresOf(clusters, 'dmz')).toEqual([{ name: 'dc1', clusters: ['dc1-b'] }]);
  });
});

describe('the template editor', () => {
  it('puts the spec checks at the spec field and the rest at theirs', () => {
    expect(editorField('spec.services[0].containers[0].image')).toBe('spec');
    expect(editorField('services[0].name')).toBe('spec');
    expect(editorField('version')).toBe('version');
    expect(editorField('template_id')).toBeUndefined();
  });
});

describe('audit pages', () => {
  it('continue at the first record not shown', () => {
    const records = Array.from({ length: 5 }, (_, i) => ({ id: `${i}`, at: `2026-01-0${9 - i}T00:00:00Z` }));
    const page = auditPage(records as never, 3);
    expect(page.items.map((r) => r.id)).toEqual(['0', '1', '2']);
    expect(page.next).toBe('2026-01-06T00:00:00Z');
    expect(auditPage(records.slice(0, 3) as never, 3).next).toBeUndefined();
  });
});
