//! A JSON document of lists, `{"key": [element, ...], ...}`, read from a
//! stream one element at a time: each element's text is handed on whole
//! (for `serde_json::from_slice`), with at most one element and one chunk
//! of the stream in memory. It is the file source's and the file target's
//! fast path: parsing a slice is about twice as fast as serde_json's
//! reader, which takes a stream byte by byte, and reading the document
//! whole instead would hold its text (45 MB at 100,000 users) beside the
//! records made from it.
//!
//! This only finds where elements start and end (strings, escapes and
//! brackets); serde_json parses each element. Anything but the plain shape
//! (a key that is not one of `keys` or comes twice, a key with an escape,
//! a value that is not a list, a trailing comma, text after the document,
//! an element that is not UTF-8)
//! is [`Stop::Unusual`]: the caller reads the document again with
//! serde_json's reader, whose answer (and error message) stands. serde_json
//! has no public way to hand out an element's text from a stream; its
//! `RawValue` over a reader copies each element byte by byte, which is the
//! cost this avoids.

use std::io::Read;

/// Why [`read`] stopped before the document's end.
#[derive(Debug)]
pub enum Stop<E> {
    /// Not the plain shape, or an element that does not parse: read it the reference way.
    Unusual,
    Io(std::io::Error),
    /// What the caller's `each` returned.
    Err(E),
}

/// How much of the stream is asked for at once.
const CHUNK: usize = 1 << 20;

struct Buf<'r, R> {
    read: &'r mut R,
    buf: Vec<u8>,
    /// Where the text not yet handed on starts.
    at: usize,
    eof: bool,
}

impl<R: Read> Buf<'_, R> {
    /// Read more, keeping what is from `at` on (moved to the front). False at the stream's end.
    fn more(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.drain(..self.at);
        self.at = 0;
        let len = self.buf.len();
        self.buf.resize(len + CHUNK, 0);
        let n = loop {
            match self.read.read(&mut self.buf[len..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        self.buf.truncate(len + *n.as_ref().unwrap_or(&0));
        let n = n?;
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// The next byte that is not whitespace, left unread; `None` at the stream's end.
    fn peek(&mut self) -> std::io::Result<Option<u8>> {
        loop {
            match self.buf[self.at..].iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
                Some(i) => {
                    self.at += i;
                    return Ok(Some(self.buf[self.at]));
                }
                None => {
                    self.at = self.buf.len();
                    if !self.more()? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Take `want` as the next byte (after whitespace), or say it is not there.
    fn expect(&mut self, want: u8) -> std::io::Result<bool> {
        let found = self.peek()? == Some(want);
        self.at += usize::from(found);
        Ok(found)
    }

    /// The length of a key's text from `at`: up to its closing quote, or
    /// to a backslash (an escape, left to serde_json).
    fn key(&mut self) -> std::io::Result<Option<usize>> {
        let mut i = 0;
        loop {
            if let Some(k) = memchr::memchr2(b'"', b'\\', &self.buf[self.at + i..]) {
                return Ok(Some(i + k));
            }
            i = self.buf.len() - self.at;
            if !self.more()? {
                return Ok(None);
            }
        }
    }

    /// The length of the element's text from `at`: up to the `,` or `]`
    /// after it (outside its strings and brackets), reading more as needed.
    /// Strings are skipped with memchr: most of a record is strings.
    fn element(&mut self) -> std::io::Result<Option<usize>> {
        let (mut i, mut depth, mut string, mut escaped) = (0, 0u32, false, false);
        loop {
            let text = &self.buf[self.at..];
            while i < text.len() {
                if escaped {
                    (escaped, i) = (false, i + 1);
                } else if string {
                    match memchr::memchr2(b'"', b'\\', &text[i..]) {
                        Some(k) => {
                            i += k;
                            if text[i] == b'"' {
                                string = false
                            } else {
                                escaped = true
                            }
                            i += 1;
                        }
                        None => i = text.len(),
                    }
                } else {
                    match text[i] {
                        b'"' => string = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' if depth > 0 => depth -= 1,
                        b']' => return Ok(Some(i)),
                        b',' if depth == 0 => return Ok(Some(i)),
                        _ => {}
                    }
                    i += 1;
                }
            }
            if !self.more()? {
                return Ok(None);
            }
        }
    }
}

/// Read the document from `read`, calling `each(key, index, text)` for each
/// element of each list, in the document's order; `key` is the position of
/// its key in `keys`. Returns which keys the document has (bit `k` for
/// `keys[k]`). `read` is left wherever the read stopped.
pub fn read<R: Read, E>(
    read: &mut R,
    keys: &[&str],
    mut each: impl FnMut(usize, usize, &[u8]) -> Result<(), Stop<E>>,
) -> Result<u64, Stop<E>> {
    assert!(keys.len() <= 64, "at most 64 keys");
    let mut b = Buf { read, buf: Vec::with_capacity(CHUNK), at: 0, eof: false };
    let mut seen = 0u64;
    if !b.expect(b'{').map_err(Stop::Io)? {
        return Err(Stop::Unusual);
    }
    if !b.expect(b'}').map_err(Stop::Io)? {
        loop {
            if !b.expect(b'"').map_err(Stop::Io)? {
                return Err(Stop::Unusual);
            }
            let len = b.key().map_err(Stop::Io)?.ok_or(Stop::Unusual)?;
            let key = b.buf[b.at..b.at + len].to_vec();
            b.at += len;
            let k = keys.iter().position(|k| k.as_bytes() == key).ok_or(Stop::Unusual)?;
            if !b.expect(b'"').map_err(Stop::Io)? || seen & (1 << k) != 0 {
                return Err(Stop::Unusual);
            }
            seen |= 1 << k;
            if !b.expect(b':').map_err(Stop::Io)? || !b.expect(b'[').map_err(Stop::Io)? {
                return Err(Stop::Unusual);
            }
            if !b.expect(b']').map_err(Stop::Io)? {
                for index in 0.. {
                    b.peek().map_err(Stop::Io)?;
                    let len = b.element().map_err(Stop::Io)?.filter(|l| *l > 0).ok_or(Stop::Unusual)?;
                    let text = &b.buf[b.at..b.at + len];
                    // serde_json skips the strings it ignores without
                    // checking them: text that is not UTF-8 is its reader's to judge.
                    if std::str::from_utf8(text).is_err() {
                        return Err(Stop::Unusual);
                    }
                    each(k, index, text)?;
                    b.at += len;
                    if b.expect(b']').map_err(Stop::Io)? {
                        break;
                    }
                    b.at += 1; // the `,`
                }
            }
            if b.expect(b'}').map_err(Stop::Io)? {
                break;
            }
            if !b.expect(b',').map_err(Stop::Io)? {
                return Err(Stop::Unusual);
            }
        }
    }
    match b.peek().map_err(Stop::Io)? {
        None => Ok(seen),
        Some(_) => Err(Stop::Unusual),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// A stream that gives at most `n` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// The lists as `read` hands them on, parsed; `None` for `Unusual`.
    fn lists(text: &[u8], piece: usize) -> Option<serde_json::Map<String, Value>> {
        const KEYS: [&str; 3] = ["departments", "users", "x\"y"];
        let mut out = serde_json::Map::new();
        let seen = read::<_, ()>(&mut Trickle(text, piece), &KEYS, |k, i, raw| {
            let v: Value = serde_json::from_slice(raw).map_err(|_| Stop::Unusual)?;
            let list = out.entry(KEYS[k]).or_insert_with(|| Value::Array(Vec::new()));
            assert_eq!(list.as_array().unwrap().len(), i, "indexes count from 0 in each list");
            list.as_array_mut().unwrap().push(v);
            Ok(())
        });
        let seen = match seen {
            Ok(s) => s,
            Err(Stop::Unusual) => return None,
            Err(e) => panic!("{e:?}"),
        };
        for (k, key) in KEYS.iter().enumerate() {
            if seen & (1 << k) != 0 {
                out.entry(*key).or_insert_with(|| Value::Array(Vec::new()));
            }
        }
        Some(out)
    }

    /// What serde_json makes of `text`, when it is the plain shape.
    fn reference(text: &[u8]) -> Option<serde_json::Map<String, Value>> {
        let doc: serde_json::Map<String, Value> = serde_json::from_slice(text).ok()?;
        let plain = doc.iter().all(|(k, v)| v.is_array() && ["departments", "users"].contains(&k.as_str()));
        plain.then_some(doc)
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z\"\\\\\\[\\]{},: 张\n\u{1}]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\\]\"]{0,3}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// A document of the plain shape reads as serde_json reads it, in pieces of any size.
        #[test]
        fn reads_what_serde_json_reads(
            d in prop::option::of(prop::collection::vec(json(), 0..5)),
            u in prop::option::of(prop::collection::vec(json(), 0..5)),
            users_first: bool, pretty: bool, piece in 1usize..40,
        ) {
            let mut doc = serde_json::Map::new();
            let given = [("departments", d), ("users", u)];
            let order: Vec<_> = if users_first { given.into_iter().rev().collect() } else { given.into_iter().collect() };
            for (k, l) in order {
                if let Some(l) = l {
                    doc.insert(k.into(), Value::Array(l));
                }
            }
            let text = if pretty { serde_json::to_vec_pretty(&doc).unwrap() } else { serde_json::to_vec(&doc).unwrap() };
            prop_assert_eq!(lists(&text, piece), Some(doc.clone()));
            prop_assert_eq!(lists(&text, CHUNK), Some(doc));
        }

        /// Whatever the text, `read` never accepts what serde_json rejects,
        /// nor reads it differently.
        #[test]
        fn accepts_nothing_serde_json_does_not(text in "[\\[\\]{}\",:\\\\ a-z0-9\n]{0,40}", piece in 1usize..8) {
            if let Some(got) = lists(text.as_bytes(), piece) {
                prop_assert_eq!(Some(got), reference(text.as_bytes()));
            }
        }

        /// A plain document broken at one byte: still never read differently.
        #[test]
        fn a_broken_document_is_never_misread(
            u in prop::collection::vec(json(), 1..4),
            at in any::<prop::sample::Index>(),
            with in prop::sample::select(vec![b'"', b'\\', b'[', b']', b'{', b'}', b',', b':', b' ', b'x']),
            drop: bool,
        ) {
            let mut text = serde_json::to_vec(&serde_json::json!({"users": u})).unwrap();
            let i = at.index(text.len());
            if drop { text.remove(i); } else { text[i] = with; }
            if let Some(got) = lists(&text, 7) {
                prop_assert_eq!(Some(got), reference(&text));
            }
        }
    }

    #[test]
    fn unusual_shapes_are_left_to_serde_json() {
        for text in [
            "",
            "[]",
            r#"{"users": {}}"#,
            r#"{"users": [], "users": []}"#,
            r#"{"other": []}"#,
            r#"{"us\u0065rs": []}"#,
            r#"{"users": [1,]}"#,
            r#"{"users": [,1]}"#,
            r#"{"users": [1 2]}"#,
            r#"{"users": []} x"#,
            r#"{"users": [],}"#,
            r#"{"users": [] "departments": []}"#,
            r#"{"users": ["#,
            r#"{"users": [1"#,
            "\u{FEFF}{}",
        ] {
            assert_eq!(lists(text.as_bytes(), 3), None, "{text}");
        }
        assert_eq!(lists(b" {} \n", 1), Some(Default::default()));
        assert_eq!(lists(br#"{"x\"y": [1]}"#, 1), None, "a key with an escape");
        assert_eq!(lists(b"{\"users\": [\"\xFF\"]}", 1), None, "not UTF-8");
    }

    #[test]
    fn a_read_error_is_said() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk"))
            }
        }
        assert!(matches!(read::<_, ()>(&mut Broken, &["users"], |_, _, _| Ok(())), Err(Stop::Io(_))));
    }
}
