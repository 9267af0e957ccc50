import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import '../i18n';
import { ApiProblem, toProblem } from '../api/problem';
import { ProblemAlert } from './ProblemAlert';

describe('ProblemAlert', () => {
  it("shows the problem's detail with the field it names", () => {
    const error = new ApiProblem({
      type: 'urn:paas:problem:invalid-argument',
      title: 'Invalid argument',
      status: 422,
      detail: 'must be at least 1',
      field: 'form.count',
    });
    render(<ProblemAlert error={error} />);
    expect(screen.getByRole('alert')).toHaveTextContent('form.count: must be at least 1');
    expect(screen.getByRole('alert')).toHaveTextContent('Invalid argument');
  });

  it('never shows [object Object] or a stack for odd errors', () => {
    for (const odd of [{}, { foo: 1 }, new Error('boom'), 'text', null]) {
      const { unmount } = render(<ProblemAlert error={odd} />);
      const text = screen.getByRole('alert').textContent ?? '';
      expect(text).not.toContain('[object Object]');
      expect(text).not.toMatch(/at \w+ \(/);
      unmount();
    }
  });
});

describe('toProblem', () => {
  it('keeps a problem+json body as it is', () => {
    const body = { type: 'urn:paas:problem:forbidden', title: 'Forbidden', status: 403, detail: 'no' };
    expect(toProblem(body)).toEqual(body);
  });
});
