// The fields of a deploy's parameters, generated from the template
// version's parameter schema (`spec.parameters`, services/apps/src/spec.rs):
// a typed input per parameter with its default, bounds and allowed values,
// so that most mistakes are caught before the API answers (and the API's
// `parameters.<name>` problems land on the same fields).
import { Form, Input, InputNumber, Select, Switch } from 'antd';
import { useTranslation } from 'react-i18next';
import { picked } from './formProblem';

export type ParameterType = 'string' | 'integer' | 'number' | 'boolean';

/** One parameter as a template version's spec declares it. */
export interface TemplateParameter {
  name: string;
  type: ParameterType;
  default?: unknown;
  required?: boolean;
  description?: string;
  minimum?: number;
  maximum?: number;
  max_length?: number;
  enum?: unknown[];
}

const TYPES: ParameterType[] = ['string', 'integer', 'number', 'boolean'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The parameters a spec declares; anything that is not a well-formed
 * parameter is skipped (the API refuses such a spec when it is saved, so
 * only a spec from elsewhere could carry one).
 */
export function parametersOf(spec: unknown): TemplateParameter[] {
  if (!isRecord(spec) || !Array.isArray(spec.parameters)) return [];
  return spec.parameters.flatMap((p): TemplateParameter[] => {
    if (!isRecord(p) || typeof p.name !== 'string' || !TYPES.includes(p.type as ParameterType)) return [];
    return [
      {
        name: p.name,
        type: p.type as ParameterType,
        default: p.default,
        required: p.required === true,
        description: typeof p.description === 'string' ? p.description : undefined,
        minimum: typeof p.minimum === 'number' ? p.minimum : undefined,
        maximum: typeof p.maximum === 'number' ? p.maximum : undefined,
        max_length: typeof p.max_length === 'number' ? p.max_length : undefined,
        enum: Array.isArray(p.enum) && p.enum.length > 0 ? p.enum : undefined,
      },
    ];
  });
}

/** Whether a spec is an imported Helm chart (its parameters are value overrides, not a schema). */
export function isChart(spec: unknown): boolean {
  return isRecord(spec) && isRecord(spec.chart);
}

/** The form's starting values: each parameter's default. */
export function initialParameterValues(parameters: TemplateParameter[]): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const p of parameters) {
    if (p.default !== undefined && p.default !== null) values[p.name] = p.default;
    else if (p.type === 'boolean') values[p.name] = false;
  }
  return values;
}

/**
 * What a deploy sends: the values the user gave, typed; a field left empty
 * is left out, so the API applies the default (or names the missing one).
 */
export function parameterValues(
  parameters: TemplateParameter[],
  values: Record<string, unknown> | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of parameters) {
    const v = values?.[p.name];
    if (v === undefined || v === null || v === '') continue;
    out[p.name] = v;
  }
  return out;
}

function label(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

// Form.Item gives the input its id (and value, onChange), so its label points at it.
function ParameterInput({ parameter, ...control }: { parameter: TemplateParameter }) {
  const p = parameter;
  if (p.enum) {
    return (
      <Select
        {...control}
        allowClear={!p.required}
        options={p.enum.map((v) => ({ value: v as string | number, label: label(v) }))}
      />
    );
  }
  switch (p.type) {
    case 'boolean':
      return <Switch {...control} />;
    case 'integer':
    case 'number':
      return (
        <InputNumber
          {...control}
          style={{ width: 200 }}
          min={p.minimum}
          max={p.maximum}
          precision={p.type === 'integer' ? 0 : undefined}
        />
      );
    default:
      return <Input {...control} maxLength={p.max_length} />;
  }
}

/**
 * The parameters' fields inside an enclosing antd `Form`, under `name`
 * (`['parameters', <parameter>]` by default).
 */
export function ParametersFields({
  parameters,
  name = 'parameters',
}: {
  parameters: TemplateParameter[];
  name?: string;
}) {
  const { t } = useTranslation();
  return (
    <>
      {parameters.map((p) => {
        const mustGive = p.required && (p.default === undefined || p.default === null);
        const bounds = [
          p.minimum !== undefined ? `≥ ${p.minimum}` : '',
          p.maximum !== undefined ? `≤ ${p.maximum}` : '',
        ]
          .filter(Boolean)
          .join(', ');
        return (
          <Form.Item
            key={p.name}
            name={[name, p.name]}
            label={`${p.name} (${p.type}${bounds ? `, ${bounds}` : ''})`}
            extra={p.description}
            valuePropName={p.type === 'boolean' && !p.enum ? 'checked' : 'value'}
            rules={[
              ...(mustGive
                ? [
                    p.enum
                      ? picked(t('portal.common.required', { what: p.name }))
                      : { required: true, message: t('portal.common.required', { what: p.name }) },
                  ]
                : []),
              ...(p.type === 'string' && p.max_length ? [{ max: p.max_length }] : []),
            ]}
          >
            <ParameterInput parameter={p} />
          </Form.Item>
        );
      })}
    </>
  );
}
