// The SQL editor: CodeMirror 6 with SQL highlighting and completion of the
// tenant's table and column names.
import { useEffect, useRef } from 'preact/hooks';
import { EditorView, basicSetup } from 'codemirror';
import { keymap } from '@codemirror/view';
import { Prec } from '@codemirror/state';
import { sql, PostgreSQL } from '@codemirror/lang-sql';
import { html } from './ui.js';

/// The per-page nonce the server put into the page and its CSP: the
/// editor's own style sheet is a <style> element carrying it.
const nonce = document.querySelector('meta[name=csp-nonce]')?.content || '';

/// Typing over a selection that spans lines: Chrome's native editing would
/// add an inline style to the merged line (refused by the CSP, logged as an
/// error); the editor replaces the selection itself instead.
const replaceSelectionTyping = EditorView.domEventHandlers({
  beforeinput(event, view) {
    const range = view.state.selection.main;
    if (event.inputType !== 'insertText' || !event.data || range.empty || event.isComposing) return false;
    event.preventDefault();
    view.dispatch(view.state.replaceSelection(event.data), { scrollIntoView: true, userEvent: 'input.type' });
    return true;
  },
});

/// An uncontrolled editor: `initial` is its first text; callers read and
/// replace the text through `editorRef` (re-rendering the page on every
/// keystroke is not needed).
export function SqlEditor({ initial, onRun, tables, editorRef }) {
  const host = useRef(null);
  const latest = useRef({ onRun });
  latest.current = { onRun };
  useEffect(() => {
    const schema = {};
    (tables || []).forEach((t) => (schema[t.name] = t.columns.map((c) => c.name)));
    const run = Prec.highest(keymap.of([{ key: 'Mod-Enter', run: () => (latest.current.onRun?.(), true) }]));
    const v = new EditorView({
      doc: editorRef.current ? editorRef.current.state.doc.toString() : initial || '',
      parent: host.current,
      extensions: [
        EditorView.cspNonce.of(nonce),
        basicSetup,
        run,
        sql({ dialect: PostgreSQL, schema, upperCaseKeywords: true }),
        EditorView.lineWrapping,
        replaceSelectionTyping,
        EditorView.contentAttributes.of({ 'aria-label': 'SQL query', 'aria-multiline': 'true' }),
      ],
    });
    editorRef.current = v;
    return () => v.destroy();
  }, [tables]);
  return html`<div class="editor" ref=${host}></div>`;
}

/// The editor's text.
export const textOf = (editorRef) => editorRef.current?.state.doc.toString() ?? '';
