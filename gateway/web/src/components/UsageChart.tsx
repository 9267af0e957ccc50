// Loaded lazily (React.lazy): ECharts stays out of the first screen's JavaScript.
import { useEffect, useRef } from 'react';
import * as echarts from 'echarts/core';
import { BarChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components';
import { SVGRenderer } from 'echarts/renderers';
import { parseQuantity } from './quantity';

echarts.use([BarChart, GridComponent, LegendComponent, TooltipComponent, SVGRenderer]);

export interface UsageBar {
  resource: string;
  used: string;
  hard?: string | null;
}

/** Used against quota per resource, as percent of the quota (resources differ in units). */
export default function UsageChart({ bars, usedLabel, title }: { bars: UsageBar[]; usedLabel: string; title: string }) {
  const element = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!element.current) return;
    const chart = echarts.init(element.current, undefined, { renderer: 'svg' });
    const percent = bars.map((b) => {
      const used = parseQuantity(b.used) ?? 0;
      const hard = parseQuantity(b.hard);
      return hard ? Math.round((used / hard) * 1000) / 10 : 0;
    });
    chart.setOption({
      aria: { enabled: true },
      tooltip: {
        trigger: 'axis',
        formatter: (items: { dataIndex: number }[]) => {
          const b = bars[items[0]?.dataIndex ?? 0];
          return b ? `${b.resource}: ${b.used} / ${b.hard ?? '∞'}` : '';
        },
      },
      grid: { left: 120, right: 24, top: 16, bottom: 24 },
      xAxis: { type: 'value', max: 100, axisLabel: { formatter: '{value}%' } },
      yAxis: { type: 'category', data: bars.map((b) => b.resource) },
      series: [{ name: usedLabel, type: 'bar', data: percent, itemStyle: { color: '#1677ff' } }],
    });
    const resize = () => chart.resize();
    window.addEventListener('resize', resize);
    return () => {
      window.removeEventListener('resize', resize);
      chart.dispose();
    };
  }, [bars, usedLabel]);
  return <div ref={element} role="img" aria-label={title} style={{ height: Math.max(120, bars.length * 36 + 40) }} />;
}
