import { useEffect, useState } from 'react';
import { api, unwrap } from '../../api/client';
import { toProblem } from '../../api/problem';

export interface StepLog {
  text: string;
  /** Output before what is shown was dropped (only the tail is kept). */
  truncated: boolean;
  /** The step's state as the log last reported it. */
  state: string;
  /** Still following: the step has not ended. */
  live: boolean;
  /** How the log arrives: Server-Sent Events, or polling when they fail. */
  via: 'events' | 'polling';
  error?: string;
}

interface Chunk {
  offset: number;
  text: string;
  truncated: boolean;
  state: string;
}

/**
 * Appends a chunk at its offset (counted in characters): the part of a
 * chunk already shown (a reconnect resends from the last id) is skipped; a
 * chunk past the end (older output was dropped) starts the text over.
 */
export function appendChunk(log: { text: string; start: number }, chunk: Chunk): { text: string; start: number } {
  const end = log.start + [...log.text].length;
  if (log.text === '' || chunk.offset > end) return { text: chunk.text, start: chunk.offset };
  const chars = [...chunk.text];
  const skip = end - chunk.offset;
  return skip >= chars.length ? log : { text: log.text + chars.slice(skip).join(''), start: log.start };
}

const ENDED = ['succeeded', 'failed', 'cancelled', 'skipped'];

/**
 * A step's output, followed live over `/steps/{id}/log` (SSE), falling
 * back to polling the step (which carries its log's tail) when the
 * events cannot be had.
 */
export function useStepLog(stepId: string | undefined): StepLog {
  const [log, setLog] = useState<StepLog>({ text: '', truncated: false, state: '', live: true, via: 'events' });
  useEffect(() => {
    if (!stepId) return;
    let closed = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let source: EventSource | undefined;
    let acc = { text: '', start: 0 };
    setLog({ text: '', truncated: false, state: '', live: true, via: 'events' });

    const poll = async () => {
      if (closed) return;
      try {
        const step = unwrap(await api.GET('/api/v1/steps/{id}', { params: { path: { id: stepId } } }));
        const ended = ENDED.includes(step.state);
        setLog({
          text: step.log,
          truncated: step.log_length > [...step.log].length,
          state: step.state,
          live: !ended,
          via: 'polling',
        });
        if (!ended && !closed) timer = setTimeout(() => void poll(), 2000);
      } catch (e) {
        setLog((l) => ({ ...l, via: 'polling', error: toProblem(e).detail }));
        if (!closed) timer = setTimeout(() => void poll(), 5000);
      }
    };

    if (typeof EventSource === 'undefined') {
      void poll();
    } else {
      let opened = false;
      source = new EventSource(`/api/v1/steps/${encodeURIComponent(stepId)}/log`);
      source.onopen = () => {
        opened = true;
      };
      const onChunk = (ended: boolean) => (event: MessageEvent<string>) => {
        const chunk = JSON.parse(event.data) as Chunk;
        acc = appendChunk(acc, chunk);
        setLog({
          text: acc.text,
          truncated: chunk.truncated || acc.start > 0,
          state: chunk.state,
          live: !ended,
          via: 'events',
        });
        if (ended) source?.close();
      };
      source.addEventListener('output', onChunk(false));
      source.addEventListener('end', onChunk(true));
      source.onerror = () => {
        // Never opened (refused, or no SSE on the way): poll instead. Once
        // opened, the browser reconnects by itself from the last offset.
        if (!opened || source?.readyState === EventSource.CLOSED) {
          source?.close();
          void poll();
        }
      };
    }
    return () => {
      closed = true;
      source?.close();
      if (timer) clearTimeout(timer);
    };
  }, [stepId]);
  return log;
}
