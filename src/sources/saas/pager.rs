//! One pager for every SaaS list: follows page tokens, cursors or offsets
//! until the last page. A token that comes back a second time, or more
//! pages than any real directory needs, fails the fetch naming the
//! endpoint: a server that repeats itself must not make orgsync loop
//! forever (and grow without bound) or read a short list as the whole.

use crate::sources::SourceError;
use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;

/// More pages than this from one endpoint is a server that never ends.
pub const MAX_PAGES: usize = 100_000;

/// One page: its items and the position of the next (`None`: the last page).
#[derive(Debug)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    pub next: Option<C>,
}

/// Every item of a paged list. `first` is the first page's position;
/// `fetch` reads the page at a position.
pub async fn all_pages<T, C, F, Fut>(vendor: &'static str, path: &str, first: C, mut fetch: F) -> Result<Vec<T>, SourceError>
where
    C: Clone + Eq + Hash + std::fmt::Debug,
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Page<T, C>, SourceError>>,
{
    let fail = |message: String| SourceError::Api { vendor, path: path.to_owned(), message };
    let mut seen: HashSet<C> = HashSet::from([first.clone()]);
    let mut at = first;
    let mut items = Vec::new();
    for _ in 0..MAX_PAGES {
        let page = fetch(at).await?;
        crate::telemetry::source_page();
        items.extend(page.items);
        match page.next {
            None => return Ok(items),
            Some(next) if !seen.insert(next.clone()) => {
                return Err(fail(format!(
                    "the page position {next:?} came a second time: the server does not advance; nothing was changed"
                )));
            }
            Some(next) => at = next,
        }
    }
    Err(fail(format!("more than {MAX_PAGES} pages: the server does not end the list; nothing was changed")))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pages(next_of: impl Fn(u32) -> Option<u32>) -> Result<Vec<u32>, SourceError> {
        all_pages("Test", "/list", 0u32, |at| {
            let next = next_of(at);
            async move { Ok(Page { items: vec![at], next }) }
        })
        .await
    }

    #[tokio::test]
    async fn pages_are_followed_to_the_last() {
        assert_eq!(pages(|at| (at < 3).then_some(at + 1)).await.unwrap(), [0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_position_that_comes_again_fails_naming_the_endpoint() {
        let e = pages(|_| Some(1)).await.unwrap_err().to_string();
        assert!(e.contains("/list") && e.contains("came a second time"), "{e}");
        let e = pages(|at| Some((at + 1) % 3)).await.unwrap_err().to_string();
        assert!(e.contains("came a second time"), "back to the first page: {e}");
    }

    #[tokio::test]
    async fn a_list_that_never_ends_stops_at_the_page_limit() {
        let e = pages(|at| Some(at + 1)).await.unwrap_err().to_string();
        assert!(e.contains("more than 100000 pages"), "{e}");
    }
}
