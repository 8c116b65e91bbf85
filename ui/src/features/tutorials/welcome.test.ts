import { describe, expect, it } from "vitest";
import { blocks, spans } from "./welcome";

describe("a tutorial's welcome text", () => {
  it("becomes headings, paragraphs, items and code", () => {
    const text = "# Welcome\n\nOpen `hello.C`\nin the editor.\n\n- one\n2. two\n\n```\nroot -l\n```";
    expect(blocks(text)).toEqual([
      { kind: "heading", level: 1, spans: [{ code: false, text: "Welcome" }] },
      {
        kind: "paragraph",
        spans: [
          { code: false, text: "Open " },
          { code: true, text: "hello.C" },
          { code: false, text: " in the editor." },
        ],
      },
      { kind: "item", spans: [{ code: false, text: "one" }] },
      { kind: "item", spans: [{ code: false, text: "two" }] },
      { kind: "code", text: "root -l" },
    ]);
  });

  it("keeps markup as text: nothing in the file becomes HTML", () => {
    const [block] = blocks("<img src=x onerror=alert(1)> and a lone ` tick");
    expect(block).toEqual({
      kind: "paragraph",
      spans: [{ code: false, text: "<img src=x onerror=alert(1)> and a lone ` tick" }],
    });
    expect(spans("a `b` c")).toHaveLength(3);
  });
});
