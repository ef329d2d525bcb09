/**
 * The finishing every experiment plot gets on top of its own chart (see finishChart), so each
 * experiment's chart() states only what it plots.
 */

/** Subtitle lines longer than this are wrapped at spaces (the plots set the page's width, not the text). */
const SUBTITLE_CHARS = 120;

function wrap(line: string, max: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const word of line.split(' ')) {
    if (cur && cur.length + 1 + word.length > max) {
      out.push(cur);
      cur = word;
    } else cur = cur ? `${cur} ${word}` : word;
  }
  if (cur) out.push(cur);
  return out;
}

function isLineMark(mark: unknown): boolean {
  return mark === 'line' || (typeof mark === 'object' && mark !== null && (mark as { type?: unknown }).type === 'line' && (mark as { strokeDash?: unknown }).strokeDash === undefined);
}

/** Line widths by method where dash patterns are taken by another field. */
const WIDTHS = [3.2, 1.4, 2.2, 1, 2.6, 1.2, 1.8];

/** Every unit spec (an object with a mark and an encoding) under `node`. */
function visitUnits(node: unknown, f: (unit: { mark: unknown; encoding: Record<string, Record<string, unknown> | undefined> }) => void): void {
  if (Array.isArray(node)) return node.forEach((n) => visitUnits(n, f));
  if (typeof node !== 'object' || node === null) return;
  const o = node as Record<string, unknown>;
  if (o.mark !== undefined && typeof o.encoding === 'object' && o.encoding !== null) f(o as never);
  for (const [k, v] of Object.entries(o)) if (k !== 'data' && k !== 'encoding' && typeof v === 'object') visitUnits(v, f);
}

/**
 * What every experiment plot gets on top of its own chart: lines coloured by a field also get
 * a dash pattern by it (identical curves would otherwise hide each other), log-scale x axes end
 * at the data (vega's nice domain ran past T), long subtitle lines are wrapped, and a partial log
 * is marked in the title.
 */
export function finishChart(spec: Record<string, unknown>, o: { partial: boolean; completed: number; planned: number }): Record<string, unknown> {
  const out = structuredClone(spec);
  // Dash patterns share one scale across the views of a plot: only when every coloured line
  // is coloured by the same field (otherwise the legend would mix two fields' values).
  const fields = new Set<unknown>();
  visitUnits(out, (u) => {
    if (isLineMark(u.mark) && u.encoding.color?.field !== undefined) fields.add(u.encoding.color.field);
    if (u.encoding.strokeDash !== undefined) fields.add(null);
  });
  let dashed = false, widened = false;
  visitUnits(out, (u) => {
    const x = u.encoding.x;
    const scale = x?.scale as Record<string, unknown> | undefined;
    if (scale && scale.type === 'log' && scale.nice === undefined) scale.nice = false;
    const color = u.encoding.color;
    if (fields.size === 1 && isLineMark(u.mark) && color && typeof color.field === 'string' && u.encoding.strokeDash === undefined) {
      const colourScale = color.scale as { domain?: unknown } | undefined;
      u.encoding.strokeDash = { field: color.field, type: 'nominal', title: color.title ?? null, ...(colourScale?.domain ? { scale: { domain: colourScale.domain } } : {}), ...(color.legend !== undefined ? { legend: color.legend } : {}) };
      dashed = true;
    } else if (isLineMark(u.mark) && color && typeof color.field === 'string' && u.encoding.strokeDash !== undefined && u.encoding.strokeWidth === undefined) {
      // Dashes already tell another field apart: widths (widest first) tell the colours apart.
      const colourScale = color.scale as { domain?: unknown[] } | undefined;
      u.encoding.strokeWidth = { field: color.field, type: 'nominal', title: color.title ?? null, ...(color.legend !== undefined ? { legend: color.legend } : {}), scale: { ...(colourScale?.domain ? { domain: colourScale.domain } : {}), range: WIDTHS } };
      widened = true;
    }
  });
  const t = out.title;
  const title: Record<string, unknown> = typeof t === 'string' ? { text: t } : typeof t === 'object' && t !== null ? (t as Record<string, unknown>) : { text: '' };
  const sub = title.subtitle === undefined ? [] : Array.isArray(title.subtitle) ? (title.subtitle as string[]) : [String(title.subtitle)];
  if (dashed) sub.push('Each method also has its own dash pattern, so curves that coincide stay visible.');
  if (widened) sub.push('Methods also differ in line width (the first widest), so curves that coincide stay visible.');
  title.subtitle = sub.flatMap((l) => wrap(l, SUBTITLE_CHARS));
  if (o.partial) {
    title.text = `${String(title.text)} (PARTIAL LOG: ${o.completed} of ${o.planned} runs)`;
    title.color = '#b00';
  }
  out.title = title;
  return out;
}
