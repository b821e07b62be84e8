/**
 * Renders the project's docs (CommonMark subset the docs use: headings, paragraphs, lists,
 * fenced code, tables, inline code, bold, links) as Preact elements — never as HTML strings, so
 * a document cannot inject markup. Headings get GitHub-style ids, so the error catalog's
 * `page.md#anchor` links land on their section.
 */
import type { ComponentChildren, VNode } from 'preact';

/** GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens. */
export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .trim()
    .replace(/\s/g, '-');
}

/** Links between docs pages stay inside the help viewer; others open in a new tab. */
function link(target: string): { href: string; external: boolean } {
  if (/^[a-z]+:/i.test(target)) return { href: target, external: true };
  if (target.startsWith('#')) return { href: target, external: false };
  const m = /^(?:\.\/)?([a-z0-9-]+\.md)(#.*)?$/.exec(target);
  if (m) return { href: `/help/${m[1]}${m[2] ?? ''}`, external: false };
  return { href: target, external: true };
}

function inline(text: string): ComponentChildren[] {
  const out: ComponentChildren[] = [];
  const re = /`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)/g;
  let last = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[1] !== undefined) out.push(<code>{m[1]}</code>);
    else if (m[2] !== undefined) out.push(<strong>{inline(m[2])}</strong>);
    else {
      const l = link(m[4]!);
      out.push(
        <a href={l.href} {...(l.external ? { target: '_blank', rel: 'noopener' } : {})}>
          {inline(m[3]!)}
        </a>,
      );
    }
    last = re.lastIndex;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

const cells = (row: string): string[] =>
  row
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim().replace(/\\\|/g, '|'));

export function renderMarkdown(source: string): VNode[] {
  const lines = source.replace(/\r\n/g, '\n').split('\n');
  const out: VNode[] = [];
  let i = 0;
  const isBlockStart = (l: string) => /^(#{1,6}\s|```|\s*[-*]\s|\s*\d+\.\s|\|)/.test(l);
  while (i < lines.length) {
    const line = lines[i]!;
    if (!line.trim()) {
      i++;
      continue;
    }
    const h = /^(#{1,6})\s+(.*)$/.exec(line);
    if (h) {
      const Tag = `h${h[1]!.length}` as 'h2';
      out.push(<Tag id={slug(h[2]!)}>{inline(h[2]!)}</Tag>);
      i++;
      continue;
    }
    if (line.startsWith('```')) {
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i]!.startsWith('```')) body.push(lines[i++]!);
      i++;
      out.push(
        <pre>
          <code>{body.join('\n')}</code>
        </pre>,
      );
      continue;
    }
    if (line.startsWith('|')) {
      const rows: string[] = [];
      while (i < lines.length && lines[i]!.startsWith('|')) rows.push(lines[i++]!);
      const [head, , ...body] = rows;
      out.push(
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                {cells(head ?? '').map((c) => (
                  <th scope="col">{inline(c)}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {body.map((r) => (
                <tr>
                  {cells(r).map((c) => (
                    <td class="wrap">{inline(c)}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>,
      );
      continue;
    }
    const list = /^\s*([-*]|\d+\.)\s+/.exec(line);
    if (list) {
      const ordered = /\d/.test(list[1]!);
      const items: string[] = [];
      while (i < lines.length && lines[i]!.trim()) {
        const l = lines[i]!;
        const m = /^\s*([-*]|\d+\.)\s+(.*)$/.exec(l);
        if (m) items.push(m[2]!);
        else if (items.length) items[items.length - 1] += ` ${l.trim()}`;
        i++;
      }
      const lis = items.map((t) => <li>{inline(t)}</li>);
      out.push(ordered ? <ol>{lis}</ol> : <ul>{lis}</ul>);
      continue;
    }
    const para: string[] = [];
    while (i < lines.length && lines[i]!.trim() && (para.length === 0 || !isBlockStart(lines[i]!)))
      para.push(lines[i++]!.trim());
    out.push(<p>{inline(para.join(' '))}</p>);
  }
  return out;
}
