// The SQL editor: CodeMirror 6 with SQL highlighting and completion of the
// tenant's table and column names.
import { useEffect, useRef } from 'preact/hooks';
import { EditorView, basicSetup } from 'codemirror';
import { keymap } from '@codemirror/view';
import { Prec } from '@codemirror/state';
import { sql, PostgreSQL } from '@codemirror/lang-sql';
import { html } from './ui.js';

export function SqlEditor({ value, onChange, onRun, tables, editorRef }) {
  const host = useRef(null);
  const view = useRef(null);
  const latest = useRef({ onChange, onRun });
  latest.current = { onChange, onRun };
  useEffect(() => {
    const schema = {};
    (tables || []).forEach((t) => (schema[t.name] = t.columns.map((c) => c.name)));
    const run = Prec.highest(keymap.of([{ key: 'Mod-Enter', run: () => (latest.current.onRun?.(), true) }]));
    const v = new EditorView({
      doc: value || '',
      parent: host.current,
      extensions: [
        basicSetup,
        run,
        sql({ dialect: PostgreSQL, schema, upperCaseKeywords: true }),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ 'aria-label': 'SQL query', 'aria-multiline': 'true' }),
        EditorView.updateListener.of((u) => u.docChanged && latest.current.onChange?.(u.state.doc.toString())),
      ],
    });
    view.current = v;
    if (editorRef) editorRef.current = v;
    return () => v.destroy();
  }, [tables]);
  useEffect(() => {
    const v = view.current;
    if (v && value !== v.state.doc.toString()) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value || '' } });
    }
  }, [value]);
  return html`<div class="editor" ref=${host}></div>`;
}
