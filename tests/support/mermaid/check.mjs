// Parses each diagram given on stdin (a JSON list of strings) with
// Mermaid's own parser and prints a JSON list: the diagram type, or the
// parse error. No DOM here: Mermaid sanitizes labels with DOMPurify, which
// needs one, so it is made a no-op (the grammar is what is checked).
import DOMPurify from "dompurify";

DOMPurify.addHook = () => {};
DOMPurify.sanitize = (text) => text;
const { default: mermaid } = await import("mermaid");

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const text of JSON.parse(input)) {
  try {
    const parsed = await mermaid.parse(text);
    results.push({ ok: true, type: parsed.diagramType });
  } catch (error) {
    results.push({ ok: false, error: String(error).slice(0, 500) });
  }
}
process.stdout.write(JSON.stringify(results));
