/** The page shell shared by the demo and replay reports: one self-contained HTML file, no script. */
import { esc } from "./svg.js";

export interface Section {
  id: string;
  title: string;
  /** Trusted HTML (built by the report modules; every data string in it is escaped). */
  html: string;
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1a1a1a;background:#fafafa;line-height:1.45}
main{max-width:1340px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 4px}h2{font-size:1.25em;margin:32px 0 8px;border-bottom:1px solid #ccc;padding-bottom:4px}
h3{font-size:1.05em;margin:18px 0 6px}
.sub{color:#555;margin:0 0 16px}
.grid{display:flex;flex-wrap:wrap;gap:12px}
.grid svg{border:1px solid #e3e3e3;border-radius:4px;max-width:100%;height:auto}
table{border-collapse:collapse;font-size:13px;margin:8px 0;background:#fff}
th,td{border:1px solid #d6d6d6;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td.l,th.l{text-align:left}
td.worst{font-weight:700;text-decoration:underline}
.note{background:#fff;border-left:4px solid #0072B2;padding:8px 14px;margin:10px 0;max-width:980px}
.warn{border-left-color:#D55E00}
code{background:#eee;padding:0 3px;border-radius:3px}
nav a{margin-right:14px}
.scroll{overflow-x:auto;max-width:100%}
`;

export function page(title: string, subtitle: string, sections: readonly Section[]): string {
  const nav = sections.map((s) => `<a href="#${esc(s.id)}">${esc(s.title)}</a>`).join("");
  const body = sections.map((s) => `<section id="${esc(s.id)}"><h2>${esc(s.title)}</h2>${s.html}</section>`).join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body><main><h1>${esc(title)}</h1><p class="sub">${esc(subtitle)}</p><nav>${nav}</nav>
${body}
</main></body></html>
`;
}

/** An HTML table; cells are escaped text unless given as `{html}`; `{cls}` adds a class. */
export type Cell = string | number | { html?: string; text?: string; cls?: string };

export function table(head: readonly string[], rows: ReadonlyArray<readonly Cell[]>, leftCols = 1): string {
  const cell = (c: Cell, j: number, tag: "td" | "th"): string => {
    const base = j < leftCols ? "l" : "";
    if (typeof c === "object") {
      const cls = [base, c.cls ?? ""].filter(Boolean).join(" ");
      return `<${tag}${cls ? ` class="${cls}"` : ""}>${c.html ?? esc(c.text ?? "")}</${tag}>`;
    }
    return `<${tag}${base ? ` class="${base}"` : ""}>${esc(String(c))}</${tag}>`;
  };
  return `<div class="scroll"><table><thead><tr>${head.map((h, j) => cell(h, j, "th")).join("")}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c, j) => cell(c, j, "td")).join("")}</tr>`)
    .join("")}</tbody></table></div>`;
}

export const grid = (charts: readonly string[]): string => `<div class="grid">${charts.join("")}</div>`;
