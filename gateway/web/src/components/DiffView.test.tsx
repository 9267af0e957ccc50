import { render, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import '../i18n';
import i18n from '../i18n';
import { DiffView } from './DiffView';

describe('DiffView', () => {
  it('shows key changes of a properties item and lines of a file', async () => {
    await i18n.changeLanguage('en');
    render(
      <DiffView
        changes={[
          {
            name: 'app.properties',
            change: 'changed',
            before: 'pool=10\n',
            after: 'pool=50\n',
            keys: [{ key: 'pool', change: 'changed', before: '10', after: '50' }],
          },
          { name: 'app.yaml', change: 'added', before: '', after: 'a: 1\nb: 2\n', keys: [] },
        ]}
      />,
    );
    const props = screen.getByRole('region', { name: 'app.properties' });
    expect(within(props).getByRole('cell', { name: 'pool' })).toBeInTheDocument();
    expect(within(props).getByRole('cell', { name: '50' })).toBeInTheDocument();
    const yaml = screen.getByRole('region', { name: 'app.yaml' });
    expect(within(yaml).getByText('Added')).toBeInTheDocument();
    const added = yaml.querySelectorAll('[data-op="added"]');
    expect(added).toHaveLength(2);
    expect(added[0]).toHaveTextContent('+ a: 1');
  });

  it('says so when nothing changed', async () => {
    await i18n.changeLanguage('en');
    render(<DiffView changes={[]} empty="The draft is the last release." />);
    expect(screen.getByText('The draft is the last release.')).toBeInTheDocument();
  });
});
