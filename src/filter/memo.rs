//! Rewritten documents, remembered. Rewriting is a pure function of the document's bytes and of
//! the parameters below (under one policy): a page served again byte for byte under the same
//! decision is answered from here instead of being parsed again. A hit is checked against the
//! whole stored document, never against its digest alone, so a hit returns exactly what the
//! rewriter would have written.
//!
//! A [`Memo`] belongs to one policy snapshot: a reload starts an empty one.

use super::html::TagReport;
use crate::category::CategorySet;
use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;

/// Everything besides the document that decides what the rewriter writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Params {
    pub granted: CategorySet,
    /// The document's encoding, by name, and whether `<meta charset>` may change it.
    pub encoding: &'static str,
    pub adjustable: bool,
    /// The Google Consent Mode block written into the page, if any.
    pub head: Option<Arc<str>>,
    /// What is written at the start of `<body>`, if anything.
    pub body: Option<Arc<str>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    params: Params,
    digest: u64,
    len: usize,
}

/// One remembered rewrite.
pub struct Entry {
    input: Bytes,
    pub output: Bytes,
    pub report: TagReport,
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<Key, Arc<Entry>> for Weight {
    fn weight(&self, _: &Key, e: &Arc<Entry>) -> u64 {
        // The bytes held, plus a little for the entry itself; never zero.
        (e.input.len() + e.output.len() + 256) as u64
    }
}

/// How many documents seen once the memo keeps track of; beyond that it forgets them all.
const SEEN: usize = 8192;

/// A bounded store of rewritten documents (S3-FIFO eviction, by bytes held). A document is
/// stored the second time it is rewritten (a doorkeeper, as in TinyLFU): a dynamic page, whose
/// bytes differ on every request, is never stored, so it neither costs the copy nor pushes out
/// the pages that are served again.
pub struct Memo {
    cache: quick_cache::sync::Cache<Key, Arc<Entry>, Weight>,
    /// Digests of the documents rewritten once and not stored.
    seen: std::sync::Mutex<rustc_hash::FxHashSet<u64>>,
    max_document: usize,
    hits: Counter,
    misses: Counter,
}

impl Memo {
    /// The largest document remembered, whatever the capacity.
    pub const MAX_DOCUMENT: usize = 256 << 10;

    /// A memo holding up to `capacity` bytes; `None` when `capacity` is 0 (memo off). Lookups
    /// of documents small enough to remember count as `hits` or `misses`.
    pub fn new(capacity: usize, (hits, misses): (Counter, Counter)) -> Option<Memo> {
        if capacity == 0 {
            return None;
        }
        // A document and its rewrite must fit several times over, so that one page cannot
        // evict all the others.
        let max_document = Self::MAX_DOCUMENT.min(capacity / 8);
        let estimated = (capacity / (64 << 10)).clamp(16, 4096);
        Some(Memo {
            cache: quick_cache::sync::Cache::with_weighter(estimated, capacity as u64, Weight),
            seen: Default::default(),
            max_document,
            hits,
            misses,
        })
    }

    /// Documents longer than this are rewritten as they stream and not remembered.
    pub fn max_document(&self) -> usize {
        self.max_document
    }

    fn key(params: &Params, input: &[u8]) -> Key {
        Key {
            params: params.clone(),
            digest: xxhash_rust::xxh3::xxh3_64(input),
            len: input.len(),
        }
    }

    /// The rewrite of exactly `input` under `params`, if remembered.
    pub fn get(&self, params: &Params, input: &[u8]) -> Option<Arc<Entry>> {
        if input.len() > self.max_document {
            return None;
        }
        let found = self
            .cache
            .get(&Self::key(params, input))
            .filter(|e| e.input[..] == *input);
        match found {
            Some(_) => self.hits.inc(),
            None => self.misses.inc(),
        };
        found
    }

    /// Remembers a completed rewrite, the second time it is offered.
    pub fn insert(&self, params: &Params, input: Bytes, output: Bytes, report: TagReport) {
        if input.len() > self.max_document {
            return;
        }
        let key = Self::key(params, &input);
        {
            use std::hash::BuildHasher as _;
            let digest = rustc_hash::FxBuildHasher.hash_one(&key);
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() >= SEEN {
                seen.clear();
            }
            if seen.insert(digest) {
                return;
            }
            seen.remove(&digest);
        }
        self.cache.insert(
            key,
            Arc::new(Entry {
                input,
                output,
                report,
            }),
        );
    }

    /// Bytes held now.
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(granted: CategorySet) -> Params {
        Params {
            granted,
            encoding: "UTF-8",
            adjustable: true,
            head: None,
            body: None,
        }
    }

    fn report(n: usize) -> TagReport {
        TagReport {
            neutralized: n,
            vendors: vec!["Meta Pixel".into()],
        }
    }

    #[test]
    fn a_hit_needs_the_same_bytes_and_the_same_params() {
        let (hits, misses) = (Counter::default(), Counter::default());
        let memo = Memo::new(1 << 20, (hits.clone(), misses.clone())).unwrap();
        let p = params(CategorySet::NECESSARY);
        let remember = || {
            memo.insert(
                &p,
                Bytes::from_static(b"<p>page</p>"),
                Bytes::from_static(b"<p>out</p>"),
                report(2),
            )
        };
        remember();
        assert!(
            memo.get(&p, b"<p>page</p>").is_none(),
            "seen once: not stored"
        );
        remember();
        let hit = memo.get(&p, b"<p>page</p>").expect("remembered");
        assert_eq!(&hit.output[..], b"<p>out</p>");
        assert_eq!(hit.report, report(2));
        assert!(memo.get(&p, b"<p>page!</p>").is_none());
        assert!(memo.get(&p, b"<p>pagf</p>").is_none());
        let mut other = p.clone();
        other.head = Some(Arc::from("<script>block</script>"));
        assert!(memo.get(&other, b"<p>page</p>").is_none());
        let mut other = p.clone();
        other.adjustable = false;
        assert!(memo.get(&other, b"<p>page</p>").is_none());
        let all = CategorySet::NECESSARY.with(crate::category::Category::Analytics);
        assert!(memo.get(&params(all), b"<p>page</p>").is_none());
        assert_eq!((hits.get(), misses.get()), (1, 6));
    }

    #[test]
    fn large_documents_are_not_remembered_and_capacity_bounds_the_bytes_held() {
        assert!(Memo::new(0, Default::default()).is_none());
        let memo = Memo::new(1 << 20, Default::default()).unwrap();
        assert_eq!(memo.max_document(), 128 << 10);
        let p = params(CategorySet::NECESSARY);
        let big = Bytes::from(vec![b'x'; (128 << 10) + 1]);
        memo.insert(&p, big.clone(), big.clone(), report(0));
        assert!(memo.get(&p, &big).is_none());
        for i in 0..200u32 {
            let doc = Bytes::from(format!("{i:08}").repeat(4096));
            memo.insert(&p, doc.clone(), doc.clone(), report(0));
            memo.insert(&p, doc.clone(), doc, report(0));
        }
        assert!(memo.weight() <= 1 << 20, "holds {} bytes", memo.weight());
    }
}
