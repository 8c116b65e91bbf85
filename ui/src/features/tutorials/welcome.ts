// A tutorial's welcome text (Markdown, from a file someone else wrote) as plain blocks the view
// renders with text nodes only: no HTML from the file ever reaches the page. The subset trainers
// need: headings, paragraphs, list items, code blocks and `inline code`.

/** A run of text, in code type or not. */
export interface Span {
  code: boolean;
  text: string;
}

export type Block =
  | { kind: "heading"; level: 1 | 2 | 3; spans: Span[] }
  | { kind: "paragraph"; spans: Span[] }
  | { kind: "item"; spans: Span[] }
  | { kind: "code"; text: string };

/** Splits `text` at backticks: odd runs are code. */
export function spans(text: string): Span[] {
  const parts = text.split("`");
  // An unmatched backtick is a backtick, not the start of code.
  if (parts.length % 2 === 0) return [{ code: false, text }];
  return parts
    .map((part, i) => ({ code: i % 2 === 1, text: part }))
    .filter((span) => span.text !== "");
}

export function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  let paragraph: string[] = [];
  let code: string[] | null = null;
  const flush = () => {
    if (paragraph.length > 0) out.push({ kind: "paragraph", spans: spans(paragraph.join(" ")) });
    paragraph = [];
  };
  for (const line of markdown.replace(/\r\n/g, "\n").split("\n")) {
    if (code !== null) {
      if (line.trimStart().startsWith("```")) {
        out.push({ kind: "code", text: code.join("\n") });
        code = null;
      } else {
        code.push(line);
      }
      continue;
    }
    const trimmed = line.trim();
    const heading = /^(#{1,6})\s+(.*)$/.exec(trimmed);
    const item = /^[-*]\s+(.*)$/.exec(trimmed) ?? /^\d+[.)]\s+(.*)$/.exec(trimmed);
    if (trimmed.startsWith("```")) {
      flush();
      code = [];
    } else if (trimmed === "") {
      flush();
    } else if (heading) {
      flush();
      const [, marks = "#", words = ""] = heading;
      const level = Math.min(marks.length, 3) as 1 | 2 | 3;
      out.push({ kind: "heading", level, spans: spans(words) });
    } else if (item) {
      flush();
      out.push({ kind: "item", spans: spans(item[1] ?? "") });
    } else {
      paragraph.push(trimmed);
    }
  }
  flush();
  if (code !== null) out.push({ kind: "code", text: code.join("\n") });
  return out;
}
