//! JSON text as ingest keeps and quotes it: payloads are stored as the
//! client wrote them (numbers as written, key order and string escapes
//! kept), only insignificant whitespace dropped; messages quote at most
//! [`SHOWN_CHARS`] characters of an offending value.

use serde_json::Value;

/// How much of an offending value a message quotes.
pub(crate) const SHOWN_CHARS: usize = 80;

/// `text` (valid JSON) without the whitespace between tokens; string
/// contents, numbers and key order are left exactly as they are.
pub(crate) fn compact(text: &str) -> String {
    let bytes = compact_bytes(text, usize::MAX);
    // Only ASCII bytes outside strings were dropped, so valid UTF-8 stays valid.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The compacted bytes of `text`, stopping once `limit` bytes are out.
fn compact_bytes(text: &str, limit: usize) -> Vec<u8> {
    let input = text.as_bytes();
    let mut out = Vec::with_capacity(input.len().min(limit));
    let mut in_string = false;
    let mut escaped = false;
    // Copy runs between dropped bytes at once rather than byte by byte.
    let mut run_start = 0;
    for (i, &b) in input.iter().enumerate() {
        if out.len() + (i - run_start) >= limit {
            out.extend_from_slice(&input[run_start..i]);
            out.truncate(limit);
            return out;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.extend_from_slice(&input[run_start..i]);
            run_start = i + 1;
        } else if b == b'"' {
            in_string = true;
        }
    }
    out.extend_from_slice(&input[run_start..]);
    out.truncate(limit);
    out
}

/// `text` cut to [`SHOWN_CHARS`] characters, with `…` if it was longer.
pub(crate) fn cut(text: &str) -> String {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Raw JSON text as quoted in a message: compacted and cut short, without
/// reading (or copying) more of a huge value than is shown.
pub(crate) fn shown_raw(text: &str) -> String {
    // Enough bytes for one character past the cut, however wide they are.
    let bytes = compact_bytes(text, 4 * (SHOWN_CHARS + 1));
    cut(&String::from_utf8_lossy(&bytes))
}

/// A value as quoted in a message, cut short if long.
pub(crate) fn shown(value: &Value) -> String {
    match value {
        Value::String(s) if s.len() > 4 * SHOWN_CHARS => {
            // Quote only the start of a long string instead of re-encoding it all.
            let start: String = s.chars().take(SHOWN_CHARS).collect();
            cut(&format!("{}…", Value::String(start)))
        }
        other => cut(&other.to_string()),
    }
}

/// A JSON number as an i64 when it is a whole number in range, written
/// either way (`5` or `5.0`, which JSON Schema also counts as an integer).
pub(crate) fn whole_number(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (-9.0e18..=9.0e18).contains(f))
            .map(|f| f as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_drops_whitespace_between_tokens_only() {
        let text = "{ \"b\" : [ 1.10 , 1e2 ,\n\t-0.0 ] ,\r\n \"a\" : \"x y\\\" \\\\ \\n\\u00e9\" ,\"c\":{ } }";
        assert_eq!(
            compact(text),
            r#"{"b":[1.10,1e2,-0.0],"a":"x y\" \\ \n\u00e9","c":{}}"#
        );
        assert_eq!(
            compact("123456789012345678901234567890"),
            "123456789012345678901234567890"
        );
        assert_eq!(compact(r#"{"k":"a\\"}"#), r#"{"k":"a\\"}"#);
        assert_eq!(compact("{\"é\" :  \"ü  ö\"}"), "{\"é\":\"ü  ö\"}");
        assert_eq!(compact(""), "");
    }

    #[test]
    fn compact_is_the_identity_on_compact_text() {
        let text = r#"{"z":1,"a":[true,false,null],"s":"  spaced  ","n":{"m":-1.5E-3}}"#;
        assert_eq!(compact(text), text);
    }

    #[test]
    fn shown_raw_quotes_the_start_of_a_huge_value() {
        let huge = format!("[{}0]", "0, ".repeat(10_000_000));
        let quoted = shown_raw(&huge);
        assert!(quoted.starts_with("[0,0,0,"), "{quoted}");
        assert!(quoted.ends_with('…'), "{quoted}");
        assert_eq!(quoted.chars().count(), SHOWN_CHARS + 1);
        assert_eq!(shown_raw("[ 1 , 2 ]"), "[1,2]");
        let wide = format!("\"{}\"", "é".repeat(500));
        assert_eq!(shown_raw(&wide).chars().count(), SHOWN_CHARS + 1);
    }

    #[test]
    fn shown_cuts_long_strings() {
        assert_eq!(shown(&Value::String("ab".into())), "\"ab\"");
        let long = shown(&Value::String("x".repeat(10_000)));
        assert_eq!(long, format!("\"{}…", "x".repeat(SHOWN_CHARS - 1)));
    }
}
