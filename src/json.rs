//! JSON output (`--json`) for every tool, one encoding for all of them.
//!
//! Module strings, paths and parameters are bytes. A text value is a JSON string when
//! its bytes are valid UTF-8, and otherwise an object `{"base64": "..."}` holding
//! them in standard base64 (RFC 4648, with padding): nothing is lost, and a strict
//! parser never meets an invalid string. An object key (a `.modinfo` field name, say)
//! that is not valid UTF-8 is written as the string `base64:` followed by its bytes
//! in base64.

use std::borrow::Cow;

/// A JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    /// Text from bytes; see the module documentation.
    Text(Vec<u8>),
    Array(Vec<Json>),
    /// Members in the order they are written.
    Object(Vec<(Cow<'static, [u8]>, Json)>),
}

impl Json {
    /// An object with fixed keys.
    pub fn obj(members: Vec<(&'static str, Json)>) -> Json {
        Json::Object(
            members
                .into_iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_bytes()), v))
                .collect(),
        )
    }

    pub fn text(bytes: impl Into<Vec<u8>>) -> Json {
        Json::Text(bytes.into())
    }

    /// Text or null.
    pub fn opt_text(bytes: Option<impl Into<Vec<u8>>>) -> Json {
        bytes.map_or(Json::Null, Json::text)
    }

    /// An array of texts.
    pub fn texts<T: Into<Vec<u8>>>(items: impl IntoIterator<Item = T>) -> Json {
        Json::Array(items.into_iter().map(Json::text).collect())
    }

    /// The value as compact JSON followed by a newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out.push(b'\n');
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Json::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Json::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => write_string(text, out),
                Err(_) => {
                    out.extend_from_slice(b"{\"base64\":");
                    write_string(&base64(bytes), out);
                    out.push(b'}');
                }
            },
            Json::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Json::Object(members) => {
                out.push(b'{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match std::str::from_utf8(key) {
                        Ok(key) => write_string(key, out),
                        Err(_) => write_string(&format!("base64:{}", base64(key)), out),
                    }
                    out.push(b':');
                    value.write(out);
                }
                out.push(b'}');
            }
        }
    }
}

/// A JSON string: quotes, backslashes and control characters escaped.
fn write_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        let value = Json::obj(vec![
            ("name", Json::text("dummy")),
            ("quoted", Json::text("a\"b\\c\n\u{1}")),
            ("bytes", Json::text(&b"caf\xe9"[..])),
            ("list", Json::texts(["x", "y"])),
            ("n", Json::Int(-3)),
            ("none", Json::Null),
            ("yes", Json::Bool(true)),
        ]);
        assert_eq!(
            String::from_utf8(value.to_line()).unwrap(),
            "{\"name\":\"dummy\",\"quoted\":\"a\\\"b\\\\c\\n\\u0001\",\
             \"bytes\":{\"base64\":\"Y2Fm6Q==\"},\"list\":[\"x\",\"y\"],\"n\":-3,\
             \"none\":null,\"yes\":true}\n"
        );
        let odd_key = Json::Object(vec![(Cow::Owned(b"k\xff".to_vec()), Json::Null)]);
        assert_eq!(odd_key.to_line(), b"{\"base64:a/8=\":null}\n");
    }

    #[test]
    fn base64_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }
}
