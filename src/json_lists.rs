//! A JSON document of lists, `{"key": [element, ...], ...}`, read from a
//! stream one element at a time, with at most one element and one chunk
//! of the stream in memory. It is the file source's and the file target's
//! fast path: each element is parsed in place in the chunk read
//! ([`Element::parse`], serde_json over a slice, about twice as fast as
//! its reader, which takes a stream byte by byte), and reading the
//! document whole instead would hold its text (45 MB at 100,000 users)
//! beside the records made from it.
//!
//! Only the document's frame is read here (its keys, brackets and
//! commas); serde_json parses each element, and an element that does not
//! parse is found whole by its strings, escapes and brackets
//! ([`Element::text`]). Anything but the plain shape (a key that is not
//! one of `keys` or comes twice, a key with an escape, a value that is not
//! a list, a trailing comma, text after the document, text that is not
//! UTF-8) is [`Stop::Unusual`]: the caller reads the document again with
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
    /// The element runs past what is read: `each` is called again for it
    /// once more is (from [`Element::parse`] and [`Element::text`]).
    More,
}

/// How much of the stream is asked for at once.
const CHUNK: usize = 1 << 20;

/// How much text past an element's start is read before it is parsed:
/// an element longer than this is parsed again once more is read (in
/// tests, nearly every element of a stream read in small pieces).
const AHEAD: usize = if cfg!(test) { 1 } else { 1 << 16 };

/// One element of a list, at its start in the text read so far.
#[derive(Debug)]
pub struct Element<'b> {
    /// From the element's start to the end of what is read.
    rest: &'b [u8],
    /// `rest` ends where the stream does.
    last: bool,
    /// The element's length, once parsed or found.
    len: Option<usize>,
}

impl<'b> Element<'b> {
    /// The element as `T`, parsed where it lies: serde_json's answer for
    /// the element alone, or [`Stop::More`] for an element not read whole.
    pub fn parse<T: serde::de::DeserializeOwned, E>(&mut self) -> Result<Result<T, serde_json::Error>, Stop<E>> {
        let mut values = serde_json::Deserializer::from_slice(self.rest).into_iter::<T>();
        match values.next() {
            // A number (or anything) ending where the text read does may go on past it.
            Some(Ok(_)) if !self.last && values.byte_offset() == self.rest.len() => Err(Stop::More),
            Some(Ok(v)) => {
                self.len = Some(values.byte_offset());
                Ok(Ok(v))
            }
            // Cut by the end of what is read: serde_json says so as an end
            // of input, or (a number in a field it ignores) as an invalid number.
            Some(Err(e)) if !self.last && (e.is_eof() || element_len(self.rest).is_none()) => Err(Stop::More),
            Some(Err(e)) => Ok(Err(e)),
            None if self.last => Err(Stop::Unusual),
            None => Err(Stop::More),
        }
    }

    /// The element's text: as parsed, or up to the `,` or `]` after it
    /// (outside its strings and brackets) when it did not parse.
    pub fn text<E>(&mut self) -> Result<&'b [u8], Stop<E>> {
        if let Some(len) = self.len {
            return Ok(&self.rest[..len]);
        }
        match element_len(self.rest) {
            // No element (`[,` or `,]`): the whole document is serde_json's to judge.
            Some(0) => Err(Stop::Unusual),
            Some(len) => {
                self.len = Some(len);
                Ok(&self.rest[..len])
            }
            None if self.last => Err(Stop::Unusual),
            None => Err(Stop::More),
        }
    }
}

/// The length of the element at the start of `text`: up to the `,` or `]`
/// after it, outside its strings and brackets; `None` when `text` ends
/// first. Strings are skipped with memchr.
fn element_len(text: &[u8]) -> Option<usize> {
    let (mut i, mut depth) = (0, 0u32);
    while i < text.len() {
        match text[i] {
            b'"' => loop {
                i += 1; // past the quote, or the escaped byte
                i += memchr::memchr2(b'"', b'\\', text.get(i..)?)?;
                if text[i] == b'"' {
                    break;
                }
                i += 1; // the backslash
            },
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => depth -= 1,
            b']' => return Some(i),
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

struct Buf<'r, R> {
    read: &'r mut R,
    buf: Vec<u8>,
    /// Where the text not yet handed on starts.
    at: usize,
    eof: bool,
    /// How much of `buf` is checked to be UTF-8 (a character cut at its
    /// end waits for the rest).
    checked: usize,
    /// Text that is not UTF-8 was read: serde_json's reader is to judge it.
    not_utf8: bool,
}

impl<R: Read> Buf<'_, R> {
    /// Read more, keeping what is from `at` on (moved to the front). False at the stream's end.
    fn more(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.drain(..self.at);
        self.checked -= self.at;
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
        // Checked as read, a chunk at a time (each element apart is
        // slower): a character cut at the chunk's end is checked whole
        // with the next; one cut at the stream's end is not UTF-8.
        match std::str::from_utf8(&self.buf[self.checked..]) {
            Ok(_) => self.checked = self.buf.len(),
            Err(e) => {
                self.checked += e.valid_up_to();
                self.not_utf8 |= e.error_len().is_some() || self.eof;
            }
        }
        Ok(n > 0)
    }

    /// Read until `want` bytes from `at` are here, or the stream ends.
    /// False when nothing more came.
    fn ahead(&mut self, want: usize) -> std::io::Result<bool> {
        let had = self.buf.len() - self.at;
        while self.buf.len() - self.at < want && self.more()? {}
        Ok(self.buf.len() - self.at > had)
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
}

/// Read the document from `read`, calling `each(key, index, element)` for
/// each element of each list, in the document's order; `key` is the
/// position of its key in `keys`. `each` is called again for the same
/// element when it returns [`Stop::More`] (what [`Element::parse`] and
/// [`Element::text`] give for an element not read whole yet): it parses
/// before it keeps anything. Returns which keys the document has (bit `k` for
/// `keys[k]`). `read` is left wherever the read stopped.
pub fn read<R: Read, E>(
    read: &mut R,
    keys: &[&str],
    mut each: impl FnMut(usize, usize, &mut Element<'_>) -> Result<(), Stop<E>>,
) -> Result<u64, Stop<E>> {
    assert!(keys.len() <= 64, "at most 64 keys");
    let mut b = Buf { read, buf: Vec::with_capacity(CHUNK), at: 0, eof: false, checked: 0, not_utf8: false };
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
                    b.ahead(AHEAD).map_err(Stop::Io)?;
                    let len = loop {
                        // serde_json skips the strings it ignores without
                        // checking them: text that is not UTF-8 is its reader's to judge.
                        if b.not_utf8 {
                            return Err(Stop::Unusual);
                        }
                        let mut el = Element { rest: &b.buf[b.at..], last: b.eof, len: None };
                        match each(k, index, &mut el).and_then(|()| el.text().map(<[u8]>::len)) {
                            Ok(len) => break len,
                            // Twice the text each time: an element parsed
                            // again and again costs no more than twice its length.
                            Err(Stop::More) => {
                                if !b.ahead(2 * (b.buf.len() - b.at)).map_err(Stop::Io)? {
                                    return Err(Stop::Unusual);
                                }
                            }
                            Err(e) => return Err(e),
                        }
                    };
                    b.at += len;
                    if b.expect(b']').map_err(Stop::Io)? {
                        break;
                    }
                    if !b.expect(b',').map_err(Stop::Io)? {
                        return Err(Stop::Unusual);
                    }
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

    /// The lists as `read` hands them on, parsed in place; `None` for `Unusual`.
    fn lists(text: &[u8], piece: usize) -> Option<serde_json::Map<String, Value>> {
        lists_by(text, piece, false)
    }

    /// [`lists`], each element parsed in place, or (`by_text`) from its text as found.
    fn lists_by(text: &[u8], piece: usize, by_text: bool) -> Option<serde_json::Map<String, Value>> {
        const KEYS: [&str; 3] = ["departments", "users", "x\"y"];
        let mut out = serde_json::Map::new();
        let seen = read::<_, ()>(&mut Trickle(text, piece), &KEYS, |k, i, el| {
            let v: Value = if by_text { serde_json::from_slice(el.text()?) } else { el.parse()? }.map_err(|_| Stop::Unusual)?;
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
            prop_assert_eq!(lists_by(&text, piece, true), Some(doc.clone()));
            prop_assert_eq!(lists(&text, CHUNK), Some(doc));
        }

        /// Whatever the text, `read` never accepts what serde_json rejects,
        /// nor reads it differently.
        #[test]
        fn accepts_nothing_serde_json_does_not(text in "[\\[\\]{}\",:\\\\ a-z0-9\n]{0,40}", piece in 1usize..8) {
            for by_text in [false, true] {
                if let Some(got) = lists_by(text.as_bytes(), piece, by_text) {
                    prop_assert_eq!(Some(got), reference(text.as_bytes()));
                }
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
            for by_text in [false, true] {
                if let Some(got) = lists_by(&text, 7, by_text) {
                    prop_assert_eq!(Some(got), reference(&text));
                }
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

    /// A number cut where a read ends, in a field the element's type
    /// ignores (serde_json calls it invalid, not an end of input): read
    /// whole once more text comes.
    #[test]
    fn a_number_cut_in_an_ignored_field_waits_for_the_rest() {
        #[derive(serde::Deserialize)]
        struct Id {
            id: String,
        }
        let text = br#"{"users": [{"n": -1.5e+3, "id": "a"}, {"m": [12, -0.25E-2], "id": "b"}]}"#;
        for piece in 1..text.len() {
            let mut ids = Vec::new();
            let read = read::<_, ()>(&mut Trickle(text, piece), &["users"], |_, _, el| {
                ids.push(el.parse::<Id, _>()?.map_err(|_| Stop::Unusual)?.id);
                Ok(())
            });
            assert!(read.is_ok(), "pieces of {piece}: {read:?}");
            assert_eq!(ids, ["a", "b"], "pieces of {piece}");
        }
    }

    /// A missing element (`[1,]`) ends the read where it is found, not at
    /// the document's end with the rest of it held in memory.
    #[test]
    fn a_missing_element_stops_the_read_at_once() {
        struct Counted<'a>(&'a [u8], usize);
        impl Read for Counted<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(4096);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                self.1 += n;
                Ok(n)
            }
        }
        let mut text = br#"{"users": [{"id": "a"},], "departments": ["#.to_vec();
        text.extend(b"0,".repeat(CHUNK));
        text.extend(b"0]}");
        let mut stream = Counted(&text, 0);
        let read = read::<_, ()>(&mut stream, &["users", "departments"], |_, _, el| {
            // As the file source does: a record that does not parse is named by its text.
            if el.parse::<Value, _>()?.is_err() {
                el.text()?;
            }
            Ok(())
        });
        assert!(matches!(read, Err(Stop::Unusual)), "{read:?}");
        assert!(stream.1 < 2 * CHUNK, "read {} bytes of {}", stream.1, text.len());
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
