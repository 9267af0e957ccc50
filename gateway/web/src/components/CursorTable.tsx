import { Button, Empty, Space, Table, Typography } from 'antd';
import type { TableProps } from 'antd';
import { useTranslation } from 'react-i18next';
import type { CursorPages } from './pages';
import { ProblemAlert } from './ProblemAlert';

interface Props<T> extends Omit<TableProps<T>, 'pagination' | 'dataSource'> {
  pages: CursorPages;
  items: T[] | undefined;
  nextCursor: string | null | undefined;
  error: unknown;
  onRetry: () => void;
  /** What to do when the list is empty. */
  empty: string;
}

/** A table of one server page with previous/next by cursor, its error and its empty state. */
export function CursorTable<T extends object>({ pages, items, nextCursor, error, onRetry, empty, ...table }: Props<T>) {
  const { t } = useTranslation();
  if (error) return <ProblemAlert error={error} onRetry={onRetry} />;
  // Long pages (up to 500 rows) render only the rows in view; virtual rows need a numeric width.
  const virtual = (items?.length ?? 0) > 200;
  return (
    <>
      <Table<T>
        {...table}
        dataSource={items}
        loading={items === undefined}
        pagination={false}
        // A scrolling body only when virtual: otherwise the page scrolls, and keyboard users need no focusable region.
        scroll={virtual ? { x: 1200, y: 600 } : { x: 'max-content' }}
        virtual={virtual}
        locale={{ emptyText: <Empty description={empty} /> }}
      />
      {(pages.hasPrevious || nextCursor) && (
        <Space style={{ marginTop: 12 }}>
          <Button disabled={!pages.hasPrevious} onClick={pages.previous}>
            {t('common.previous')}
          </Button>
          <Typography.Text>{t('common.page', { n: pages.page })}</Typography.Text>
          <Button disabled={!nextCursor} onClick={() => pages.next(nextCursor)}>
            {t('common.next')}
          </Button>
        </Space>
      )}
    </>
  );
}
