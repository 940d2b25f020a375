//! Consent records: one per choice a visitor makes in the consent banner, stored durably before
//! the choice is answered, as the site's proof of consent (GDPR Art. 7(1)), and deleted when
//! their retention ends.
//!
//! Two databases: SQLite (the default: a file beside the proxy, written by one thread of its
//! own) and PostgreSQL (shared by several replicas). Both answer `Ok` to an insert only once the
//! record is durable, and both answer `Err` within bounded time when the database fails; no
//! error message carries a password.

mod postgres;
mod sqlite;

use crate::config::{RecordBackend, RecordStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the visitor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChoiceKind {
    /// Accepted every category.
    Accept,
    /// Rejected every optional category.
    Reject,
    /// Chose category by category.
    Settings,
    /// Withdrew an earlier consent.
    Withdrawal,
}

impl ChoiceKind {
    pub const ALL: [ChoiceKind; 4] = [
        ChoiceKind::Accept,
        ChoiceKind::Reject,
        ChoiceKind::Settings,
        ChoiceKind::Withdrawal,
    ];

    /// The name stored and exported: `accept`, `reject`, `settings`, `withdrawal`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChoiceKind::Accept => "accept",
            ChoiceKind::Reject => "reject",
            ChoiceKind::Settings => "settings",
            ChoiceKind::Withdrawal => "withdrawal",
        }
    }

    /// The inverse of [`ChoiceKind::as_str`].
    pub fn parse(s: &str) -> Option<ChoiceKind> {
        ChoiceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ChoiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One consent choice, as stored. Its JSON form (`Serialize`) also carries the time as RFC 3339
/// UTC in `ts`, beside `ts_ms`; reading JSON back ignores `ts`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConsentRecord {
    /// The consent ID: 128 random bits as 32 lowercase hex digits ([`new_id`]).
    pub id: String,
    /// When the choice was made: Unix time in milliseconds (UTC).
    pub ts_ms: i64,
    pub kind: ChoiceKind,
    /// Category name → granted.
    pub choices: BTreeMap<String, bool>,
    /// Hash of the banner texts shown.
    pub texts_version: String,
    pub policy_version: String,
    pub region: Option<String>,
    /// Privacy signals the request carried, e.g. `dnt`, `gpc`.
    pub signals: Vec<String>,
    /// The client address, already minimized.
    pub client: String,
    /// The page path the choice was made on.
    pub path: String,
    /// The site it was made on (`sites[].name`, `default` without `sites`); `None` in records
    /// stored before sites were recorded.
    #[serde(default)]
    pub site: Option<String>,
}

impl Serialize for ConsentRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Exported<'a> {
            id: &'a str,
            ts: String,
            ts_ms: i64,
            kind: ChoiceKind,
            choices: &'a BTreeMap<String, bool>,
            texts_version: &'a str,
            policy_version: &'a str,
            region: &'a Option<String>,
            signals: &'a [String],
            client: &'a str,
            path: &'a str,
            site: &'a Option<String>,
        }
        Exported {
            id: &self.id,
            ts: rfc3339_millis(self.ts_ms),
            ts_ms: self.ts_ms,
            kind: self.kind,
            choices: &self.choices,
            texts_version: &self.texts_version,
            policy_version: &self.policy_version,
            region: &self.region,
            signals: &self.signals,
            client: &self.client,
            path: &self.path,
            site: &self.site,
        }
        .serialize(s)
    }
}

/// The latest time a record may carry: 9999-12-31T23:59:59.999Z, the end of RFC 3339's years.
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// A new consent ID: 128 bits from the operating system's random number generator, as 32
/// lowercase hex digits.
///
/// # Panics
/// If the operating system cannot provide random bytes (see [`try_new_id`]).
pub fn new_id() -> String {
    try_new_id().expect("the operating system's random number generator failed")
}

/// [`new_id`], with the random number generator's failure as an error.
pub fn try_new_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for b in bytes {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    Ok(id)
}

/// Whether `id` has the form of a consent ID: 32 lowercase hex digits.
pub fn is_valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Now, as Unix time in milliseconds.
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// `ts_ms` as RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:30:00.250Z`. Times outside
/// years 0000–9999 (which a store refuses) are written with as many year digits as they need.
pub fn rfc3339_millis(ts_ms: i64) -> String {
    let days = ts_ms.div_euclid(86_400_000);
    let ms_of_day = ts_ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, ms) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// What went wrong, for a caller that answers differently (e.g. a duplicate ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// A record with this ID is already stored; the stored one is unchanged.
    Duplicate,
    /// The record was refused before it reached the database (e.g. a malformed ID).
    Invalid,
    /// The database did not answer in time. For an insert, whether the record was stored is
    /// unknown.
    Timeout,
    /// The database failed: disk full, file not writable, server down, ….
    Unavailable,
    /// A stored row could not be read back as a record.
    Corrupt,
}

/// A failed store operation. The message names the store (file, or PostgreSQL user, host and
/// database: never a password) and the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

impl StoreError {
    pub(crate) fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    pub fn is_duplicate(&self) -> bool {
        self.kind == StoreErrorKind::Duplicate
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

/// Deleted per statement by [`ConsentStore::purge`], so that inserts are not held up behind a
/// long delete.
const PURGE_BATCH: u64 = 5000;

/// How often [`spawn_purge`] deletes expired records.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// The consent record store. Cheap to clone; every clone uses the same database.
#[derive(Clone)]
pub struct ConsentStore {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(Arc<postgres::Postgres>),
}

impl fmt::Debug for ConsentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsentStore")
            .field("store", &self.name())
            .finish()
    }
}

impl ConsentStore {
    /// Opens (or creates) the store and its table. The error names the file or the server
    /// (never its password).
    pub async fn open(settings: &RecordStore) -> Result<ConsentStore, String> {
        let backend = match &settings.backend {
            RecordBackend::Sqlite { path } => Backend::Sqlite(sqlite::Sqlite::open(path).await?),
            RecordBackend::Postgres { url } => {
                Backend::Postgres(Arc::new(postgres::Postgres::open(url).await?))
            }
        };
        Ok(ConsentStore { backend })
    }

    /// Stores `rec`. `Ok` only once it is durable: committed to a SQLite file in WAL mode with
    /// `synchronous=FULL`, or committed by PostgreSQL.
    pub async fn insert(&self, rec: &ConsentRecord) -> Result<(), StoreError> {
        if let Err(why) = check(rec) {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                format!("{}: insert refused: {why}", self.name()),
            ));
        }
        match &self.backend {
            Backend::Sqlite(s) => s.insert(rec).await,
            Backend::Postgres(p) => p.insert(rec).await,
        }
    }

    /// The record with this ID, if stored.
    pub async fn get(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        if !is_valid_id(id) {
            // Nothing of another form can have been stored.
            return Ok(None);
        }
        match &self.backend {
            Backend::Sqlite(s) => s.get(id).await,
            Backend::Postgres(p) => p.get(id).await,
        }
    }

    /// At most `limit` records with `from_ms <= ts_ms < to_ms`, ordered by time, then ID.
    pub async fn export(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<ConsentRecord>, StoreError> {
        self.export_site(None, from_ms, to_ms, limit).await
    }

    /// As [`Store::export`], of one site's records when `site` is given (records stored before
    /// the store had sites have none, and are only in an export of every site).
    pub async fn export_site(
        &self,
        site: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<Vec<ConsentRecord>, StoreError> {
        if from_ms >= to_ms || limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let site = site.map(str::to_string);
        match &self.backend {
            Backend::Sqlite(s) => s.export(site, from_ms, to_ms, limit).await,
            Backend::Postgres(p) => p.export(site, from_ms, to_ms, limit).await,
        }
    }

    /// Deletes the records with `ts_ms < older_than_ms`; returns how many.
    pub async fn purge(&self, older_than_ms: i64) -> Result<u64, StoreError> {
        self.purge_in_batches(older_than_ms, PURGE_BATCH).await
    }

    async fn purge_in_batches(&self, older_than_ms: i64, batch: u64) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let deleted = match &self.backend {
                Backend::Sqlite(s) => s.purge_batch(older_than_ms, batch).await,
                Backend::Postgres(p) => p.purge_batch(older_than_ms, batch).await,
            };
            match deleted {
                Ok(n) => {
                    total += n;
                    if n < batch {
                        return Ok(total);
                    }
                }
                Err(e) if total > 0 => {
                    return Err(StoreError::new(
                        e.kind(),
                        format!("{e} (after {total} expired records were deleted)"),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The store for messages: `sqlite FILE` or `postgres USER@HOST:PORT/DB`, without password.
    pub fn name(&self) -> &str {
        match &self.backend {
            Backend::Sqlite(s) => s.name(),
            Backend::Postgres(p) => p.name(),
        }
    }
}

/// Why a record cannot be stored, if it cannot.
fn check(rec: &ConsentRecord) -> Result<(), String> {
    if !is_valid_id(&rec.id) {
        return Err("the ID is not 32 lowercase hex digits".into());
    }
    if !(0..=MAX_TS_MS).contains(&rec.ts_ms) {
        return Err(format!(
            "the time {} ms is outside years 1970 to 9999",
            rec.ts_ms
        ));
    }
    Ok(())
}

/// Deletes expired records now and then every [`PURGE_INTERVAL`], for as long as the task runs;
/// logs what it deleted, and failures (which are tried again an interval later).
pub fn spawn_purge(store: ConsentStore, retention: Duration) -> tokio::task::JoinHandle<()> {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let cutoff = now_ms().saturating_sub(retention_ms);
            match store.purge(cutoff).await {
                Ok(deleted) => tracing::info!(
                    store = store.name(),
                    deleted,
                    before = %rfc3339_millis(cutoff),
                    "deleted consent records past their retention"
                ),
                Err(e) => tracing::warn!(
                    store = store.name(),
                    error = %e,
                    "could not delete expired consent records; trying again in an hour"
                ),
            }
        }
    })
}

/// The record's choices and signals as stored: JSON text.
fn to_json<T: Serialize + ?Sized>(v: &T) -> String {
    // Maps of strings to booleans and lists of strings always serialize.
    serde_json::to_string(v).unwrap_or_default()
}

/// A stored row's fields, checked back into a record.
#[allow(clippy::too_many_arguments)]
fn from_row(
    name: &str,
    id: String,
    ts_ms: i64,
    kind: &str,
    choices: &str,
    texts_version: String,
    policy_version: String,
    region: Option<String>,
    signals: Vec<String>,
    client: String,
    path: String,
    site: Option<String>,
) -> Result<ConsentRecord, StoreError> {
    let corrupt = |what: String| {
        StoreError::new(
            StoreErrorKind::Corrupt,
            format!("{name}: record {id}: {what}"),
        )
    };
    let kind = ChoiceKind::parse(kind).ok_or_else(|| corrupt(format!("unknown kind `{kind}`")))?;
    let choices = serde_json::from_str(choices)
        .map_err(|e| corrupt(format!("choices are not a JSON object of booleans: {e}")))?;
    Ok(ConsentRecord {
        id,
        ts_ms,
        kind,
        choices,
        texts_version,
        policy_version,
        region,
        signals,
        client,
        path,
        site,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A record at `ts_ms` with a fresh ID.
    pub(crate) fn sample(ts_ms: i64) -> ConsentRecord {
        ConsentRecord {
            id: new_id(),
            ts_ms,
            kind: ChoiceKind::Settings,
            choices: [
                ("necessary".to_string(), true),
                ("analytics".to_string(), false),
                ("marketing".to_string(), true),
            ]
            .into_iter()
            .collect(),
            texts_version: "sha256:9f86d081884c7d65".into(),
            policy_version: "2024-05-01".into(),
            region: Some("EU".into()),
            signals: vec!["dnt".into(), "gpc".into()],
            client: "203.0.113.0/24".into(),
            path: "/products/ünïcode?".into(),
            site: Some("shop".into()),
        }
    }

    #[test]
    fn ids_are_128_random_bits_in_hex() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert!(is_valid_id(id), "{id}");
        }
        assert!(!is_valid_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_valid_id("0123456789abcdef0123456789abcde"));
        assert!(!is_valid_id("0123456789abcdef0123456789abcdeg"));
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_millis(MAX_TS_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        // No panic at the ends of the range.
        rfc3339_millis(i64::MIN);
        rfc3339_millis(i64::MAX);
        // The same as humantime's, over the range a store accepts.
        let mut t: i64 = 1;
        while t < MAX_TS_MS {
            let at = UNIX_EPOCH + Duration::from_millis(t as u64);
            assert_eq!(
                rfc3339_millis(t),
                humantime::format_rfc3339_millis(at).to_string(),
                "{t}"
            );
            t = t * 3 + 7919;
        }
    }

    #[test]
    fn json_has_the_time_in_both_forms_and_reads_back() {
        let mut rec = sample(1_714_566_600_250);
        rec.kind = ChoiceKind::Withdrawal;
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["ts"], "2024-05-01T12:30:00.250Z");
        assert_eq!(json["ts_ms"], 1_714_566_600_250i64);
        assert_eq!(json["kind"], "withdrawal");
        assert_eq!(json["choices"]["analytics"], false);
        assert_eq!(json["signals"][1], "gpc");
        let back: ConsentRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
        for k in ChoiceKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(ChoiceKind::parse(k.as_str()), Some(k));
        }
    }
}
