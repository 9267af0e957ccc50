import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { Button, Form } from 'antd';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import i18n from '../i18n';
import {
  initialParameterValues,
  isChart,
  parametersOf,
  parameterValues,
  ParametersFields,
  type TemplateParameter,
} from './ParametersForm';

// The README's example spec's parameters, with an enum and a boolean besides.
const SPEC = {
  parameters: [
    { name: 'tag', type: 'string', required: true, description: 'Image tag', max_length: 20 },
    { name: 'replicas', type: 'integer', default: 2, minimum: 1, maximum: 10 },
    { name: 'mode', type: 'string', enum: ['blue', 'green'], default: 'blue' },
    { name: 'debug', type: 'boolean' },
    { name: 'broken', type: 'object' },
    'not a parameter',
  ],
  services: [],
};

describe('parametersOf', () => {
  it('reads the typed parameters and skips what is not one', () => {
    const ps = parametersOf(SPEC);
    expect(ps.map((p) => [p.name, p.type])).toEqual([
      ['tag', 'string'],
      ['replicas', 'integer'],
      ['mode', 'string'],
      ['debug', 'boolean'],
    ]);
    expect(ps[0]).toMatchObject({ required: true, max_length: 20, description: 'Image tag' });
    expect(ps[1]).toMatchObject({ minimum: 1, maximum: 10, default: 2, required: false });
    expect(ps[2].enum).toEqual(['blue', 'green']);
  });

  it('answers nothing for a spec without parameters, and knows a chart', () => {
    expect(parametersOf(undefined)).toEqual([]);
    expect(parametersOf({ chart: { files: {} } })).toEqual([]);
    expect(isChart({ chart: { files: {} } })).toBe(true);
    expect(isChart(SPEC)).toBe(false);
  });
});

describe('parameter values', () => {
  const ps = parametersOf(SPEC);

  it('start from the defaults, booleans off', () => {
    expect(initialParameterValues(ps)).toEqual({ replicas: 2, mode: 'blue', debug: false });
  });

  it('leave out what was left empty, so the API applies the default', () => {
    expect(parameterValues(ps, { tag: '1.4', replicas: null, mode: '', debug: true, stray: 1 })).toEqual({
      tag: '1.4',
      debug: true,
    });
    expect(parameterValues(ps, undefined)).toEqual({});
  });
});

function Harness({ parameters, onFinish }: { parameters: TemplateParameter[]; onFinish: (v: unknown) => void }) {
  return (
    <Form layout="vertical" initialValues={{ parameters: initialParameterValues(parameters) }} onFinish={onFinish}>
      <ParametersFields parameters={parameters} />
      <Button htmlType="submit">go</Button>
    </Form>
  );
}

describe('ParametersFields', () => {
  beforeEach(async () => {
    await i18n.changeLanguage('en');
  });

  it('renders a labelled, typed field per parameter with its default', () => {
    render(<Harness parameters={parametersOf(SPEC)} onFinish={() => {}} />);
    expect(screen.getByLabelText(/^tag \(string\)/)).toHaveAttribute('maxlength', '20');
    const replicas = screen.getByLabelText(/^replicas \(integer, ≥ 1, ≤ 10\)/);
    expect(replicas).toHaveValue('2');
    expect(screen.getByRole('switch', { name: /^debug/ })).not.toBeChecked();
    expect(screen.getByRole('combobox', { name: /^mode/ })).toBeInTheDocument();
    expect(screen.getByText('Image tag')).toBeInTheDocument();
  });

  it('refuses to submit without a required parameter and names it', async () => {
    const onFinish = vi.fn();
    render(<Harness parameters={parametersOf(SPEC)} onFinish={onFinish} />);
    await userEvent.click(screen.getByRole('button', { name: 'go' }));
    expect(await screen.findByText('Enter the tag')).toBeInTheDocument();
    expect(onFinish).not.toHaveBeenCalled();
  });

  it('submits typed values: numbers as numbers, switches as booleans', async () => {
    const onFinish = vi.fn();
    render(<Harness parameters={parametersOf(SPEC)} onFinish={onFinish} />);
    await userEvent.type(screen.getByLabelText(/^tag/), '1.4');
    const replicas = screen.getByLabelText(/^replicas/);
    await userEvent.clear(replicas);
    await userEvent.type(replicas, '3');
    await userEvent.click(screen.getByRole('switch', { name: /^debug/ }));
    await userEvent.click(screen.getByRole('button', { name: 'go' }));
    await waitFor(() => expect(onFinish).toHaveBeenCalled());
    expect(onFinish.mock.calls[0][0]).toEqual({ parameters: { tag: '1.4', replicas: 3, mode: 'blue', debug: true } });
  });
});
