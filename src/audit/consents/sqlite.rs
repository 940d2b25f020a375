//! Consent records in a SQLite file. One thread of its own owns the connection (SQLite calls
//! block, and must not block tokio's workers); tasks send it jobs through a bounded queue and
//! wait for the answer with a deadline. Inserts that are waiting together are committed in one
//! transaction (one fsync for the group), each answered only after that commit.

use super::{ConsentRecord, StoreError, StoreErrorKind, from_row, to_json};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long a statement waits for another connection's lock (another process using the file)
/// before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Jobs waiting for the thread; a sender waits (within its deadline) when it is full.
const QUEUE: usize = 1024;
/// Inserts committed together at most.
const GROUP: usize = 256;
/// The schema this code writes, in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS consent_records (
    id TEXT NOT NULL PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('accept', 'reject', 'settings', 'withdrawal')),
    choices TEXT NOT NULL,
    texts_version TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    region TEXT,
    signals TEXT NOT NULL,
    client TEXT NOT NULL,
    path TEXT NOT NULL,
    site TEXT
);
CREATE INDEX IF NOT EXISTS consent_records_ts ON consent_records (ts_ms, id);
CREATE INDEX IF NOT EXISTS consent_records_site ON consent_records (site, ts_ms, id);
PRAGMA user_version = 2;
COMMIT;";

/// Schema 1 to 2: records carry their site.
const MIGRATE_1_2: &str = "BEGIN IMMEDIATE;
ALTER TABLE consent_records ADD COLUMN site TEXT;
CREATE INDEX IF NOT EXISTS consent_records_site ON consent_records (site, ts_ms, id);
PRAGMA user_version = 2;
COMMIT;";

const COLUMNS: &str =
    "id, ts_ms, kind, choices, texts_version, policy_version, region, signals, client, path, site";

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Job {
    Insert(Box<ConsentRecord>, Reply<()>),
    Get(String, Reply<Option<ConsentRecord>>),
    Export {
        site: Option<String>,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
        reply: Reply<Vec<ConsentRecord>>,
    },
    Purge {
        older_than_ms: i64,
        batch: u64,
        reply: Reply<u64>,
    },
}

/// A handle on the store's thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(super) struct Sqlite {
    jobs: mpsc::Sender<Job>,
    name: Arc<str>,
    /// How long a caller waits for its answer, queueing included.
    deadline: Duration,
}

impl Sqlite {
    pub(super) async fn open(path: &Path) -> Result<Sqlite, String> {
        Sqlite::open_with(path, BUSY_TIMEOUT).await
    }

    /// With another busy timeout (tests use a short one); the deadline of every operation is
    /// twice that.
    pub(super) async fn open_with(path: &Path, busy_timeout: Duration) -> Result<Sqlite, String> {
        let cannot = |why: &dyn std::fmt::Display| {
            format!(
                "consent records: cannot open the SQLite database {}: {why}",
                path.display()
            )
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(cannot(&format!("{} is not a directory", dir.display()))),
                Err(e) => return Err(cannot(&format!("its directory {}: {e}", dir.display()))),
            }
        }
        if path.is_dir() {
            return Err(cannot(&"it is a directory"));
        }
        let name: Arc<str> = format!("sqlite {}", path.display()).into();
        let (jobs, queue) = mpsc::channel(QUEUE);
        let (ready, opened) = oneshot::channel();
        let file: PathBuf = path.to_path_buf();
        let thread_name = name.clone();
        std::thread::Builder::new()
            .name("consent-sqlite".into())
            .spawn(move || match connect(&file, busy_timeout) {
                Ok(conn) => {
                    let _ = ready.send(Ok(()));
                    serve(conn, queue, &thread_name);
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            })
            .map_err(|e| cannot(&format!("cannot start its thread: {e}")))?;
        match tokio::time::timeout(busy_timeout * 3, opened).await {
            Ok(Ok(Ok(()))) => Ok(Sqlite {
                jobs,
                name,
                deadline: busy_timeout * 2,
            }),
            Ok(Ok(Err(e))) => Err(cannot(&e)),
            Ok(Err(_)) => Err(cannot(&"its thread ended")),
            Err(_) => Err(cannot(&"it did not open in time")),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Sends a job and waits for its answer, both within the deadline.
    async fn call<T>(&self, op: &str, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + self.deadline;
        let failed = |kind, why: &str| StoreError::new(kind, format!("{}: {op}: {why}", self.name));
        match tokio::time::timeout_at(deadline, self.jobs.send(job(reply))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(failed(
                    StoreErrorKind::Unavailable,
                    "the store's thread has stopped",
                ));
            }
            Err(_) => {
                return Err(failed(
                    StoreErrorKind::Timeout,
                    &format!(
                        "the store is overloaded (no room in its queue for {:?})",
                        self.deadline
                    ),
                ));
            }
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(failed(
                StoreErrorKind::Unavailable,
                "the store's thread has stopped",
            )),
            Err(_) => Err(failed(
                StoreErrorKind::Timeout,
                &format!(
                    "no answer within {:?}; the outcome is unknown",
                    self.deadline
                ),
            )),
        }
    }

    pub(super) async fn insert(&self, rec: &ConsentRecord) -> Result<(), StoreError> {
        let op = format!("insert {}", rec.id);
        self.call(&op, |reply| Job::Insert(Box::new(rec.clone()), reply))
            .await
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        self.call("get", |reply| Job::Get(id.to_string(), reply))
            .await
    }

    pub(super) async fn export(
        &self,
        site: Option<String>,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> Result<Vec<ConsentRecord>, StoreError> {
        self.call("export", |reply| Job::Export {
            site,
            from_ms,
            to_ms,
            limit,
            reply,
        })
        .await
    }

    pub(super) async fn purge_batch(
        &self,
        older_than_ms: i64,
        batch: u64,
    ) -> Result<u64, StoreError> {
        self.call("purge", |reply| Job::Purge {
            older_than_ms,
            batch,
            reply,
        })
        .await
    }
}

/// Opens the file durably: write-ahead log, and a commit is on disk when it returns
/// (`synchronous=FULL` syncs the log at every commit).
fn connect(path: &Path, busy_timeout: Duration) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| e.to_string())?;
    conn.busy_timeout(busy_timeout).map_err(|e| e.to_string())?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "it cannot use a write-ahead log here (journal mode stays `{mode}`)"
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    let synchronous: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if synchronous != 2 {
        return Err(format!(
            "synchronous=FULL did not take (it is {synchronous})"
        ));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version > SCHEMA_VERSION {
        return Err(format!(
            "it was written by a newer version of the proxy (schema {version}; this one knows {SCHEMA_VERSION})"
        ));
    }
    let (batch, doing) = if version == 1 {
        (MIGRATE_1_2, "add the site column to")
    } else {
        (SCHEMA, "create")
    };
    if let Err(e) = conn.execute_batch(batch) {
        let _ = conn.execute_batch("ROLLBACK");
        // Another process opening the same file migrated it in between.
        let migrated = version == 1 && e.to_string().contains("duplicate column name");
        if !migrated {
            return Err(format!("cannot {doing} the consent_records table: {e}"));
        }
    }
    Ok(conn)
}

/// The thread: answers jobs until every handle is dropped.
fn serve(mut conn: Connection, mut queue: mpsc::Receiver<Job>, name: &str) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match queue.blocking_recv() {
                Some(job) => job,
                None => return,
            },
        };
        match job {
            Job::Insert(rec, reply) => {
                let mut group = vec![(rec, reply)];
                while group.len() < GROUP {
                    match queue.try_recv() {
                        Ok(Job::Insert(rec, reply)) => group.push((rec, reply)),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                insert_group(&mut conn, group, name);
            }
            Job::Get(id, reply) => {
                let _ = reply.send(get(&conn, &id, name));
            }
            Job::Export {
                site,
                from_ms,
                to_ms,
                limit,
                reply,
            } => {
                let _ = reply.send(export(&conn, site.as_deref(), from_ms, to_ms, limit, name));
            }
            Job::Purge {
                older_than_ms,
                batch,
                reply,
            } => {
                let _ = reply.send(purge(&conn, older_than_ms, batch, name));
            }
        }
    }
}

fn failed(name: &str, op: &str, e: &rusqlite::Error) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, format!("{name}: {op}: {e}"))
}

/// Inserts a group in one transaction; each is answered after the commit. A duplicate ID fails
/// only its own insert; any other failure (disk full, I/O error, a lock held too long) fails the
/// whole group, which is rolled back.
fn insert_group(conn: &mut Connection, group: Vec<(Box<ConsentRecord>, Reply<()>)>, name: &str) {
    // A caller that stopped waiting (its deadline passed) was told the outcome is unknown; its
    // record is not written now.
    let group: Vec<_> = group.into_iter().filter(|(_, r)| !r.is_closed()).collect();
    if group.is_empty() {
        return;
    }
    let fail_all = |group: Vec<(Box<ConsentRecord>, Reply<()>)>, e: &rusqlite::Error| {
        for (rec, reply) in group {
            let _ = reply.send(Err(failed(name, &format!("insert {}", rec.id), e)));
        }
    };
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail_all(group, &e),
    };
    let mut results = Vec::with_capacity(group.len());
    let mut abort = None;
    match tx.prepare(&format!(
        "INSERT INTO consent_records ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    )) {
        Err(e) => abort = Some(e),
        Ok(mut stmt) => {
            for (rec, _) in &group {
                let outcome = stmt.execute(params![
                    rec.id,
                    rec.ts_ms,
                    rec.kind.as_str(),
                    to_json(&rec.choices),
                    rec.texts_version,
                    rec.policy_version,
                    rec.region,
                    to_json(&rec.signals),
                    rec.client,
                    rec.path,
                    rec.site,
                ]);
                match outcome {
                    Ok(_) => results.push(Ok(())),
                    Err(rusqlite::Error::SqliteFailure(f, _))
                        if f.code == ErrorCode::ConstraintViolation =>
                    {
                        let (kind, why) =
                            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY {
                                (
                                    StoreErrorKind::Duplicate,
                                    "a record with this ID is already stored",
                                )
                            } else {
                                (
                                    StoreErrorKind::Invalid,
                                    "the record breaks a table constraint",
                                )
                            };
                        results.push(Err(StoreError::new(
                            kind,
                            format!("{name}: insert {}: {why}", rec.id),
                        )));
                    }
                    Err(e) => {
                        abort = Some(e);
                        break;
                    }
                }
            }
        }
    }
    if let Some(e) = abort {
        // Dropping the transaction rolls it back.
        drop(tx);
        return fail_all(group, &e);
    }
    if let Err(e) = tx.commit() {
        return fail_all(group, &e);
    }
    for ((_, reply), result) in group.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

fn read_row(
    row: &rusqlite::Row<'_>,
    name: &str,
) -> rusqlite::Result<Result<ConsentRecord, StoreError>> {
    let id: String = row.get(0)?;
    let kind: String = row.get(2)?;
    let choices: String = row.get(3)?;
    let signals: String = row.get(7)?;
    let signals: Vec<String> = match serde_json::from_str(&signals) {
        Ok(s) => s,
        Err(e) => {
            return Ok(Err(StoreError::new(
                StoreErrorKind::Corrupt,
                format!("{name}: record {id}: signals are not a JSON list of strings: {e}"),
            )));
        }
    };
    Ok(from_row(
        name,
        id,
        row.get(1)?,
        &kind,
        &choices,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        signals,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn get(conn: &Connection, id: &str, name: &str) -> Result<Option<ConsentRecord>, StoreError> {
    let run = || -> rusqlite::Result<Option<Result<ConsentRecord, StoreError>>> {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM consent_records WHERE id = ?1"
        ))?;
        let mut rows = stmt.query([id])?;
        match rows.next()? {
            Some(row) => Ok(Some(read_row(row, name)?)),
            None => Ok(None),
        }
    };
    match run() {
        Ok(Some(rec)) => rec.map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(failed(name, "get", &e)),
    }
}

/// The export's statement: of every site, or of the site `?4` (two statements, so that each
/// is planned on its own index).
fn export_sql(by_site: bool) -> String {
    let site = if by_site { "site = ?4 AND " } else { "" };
    format!(
        "SELECT {COLUMNS} FROM consent_records WHERE {site}ts_ms >= ?1 AND ts_ms < ?2 \
         ORDER BY ts_ms, id LIMIT ?3"
    )
}

fn export(
    conn: &Connection,
    site: Option<&str>,
    from_ms: i64,
    to_ms: i64,
    limit: i64,
    name: &str,
) -> Result<Vec<ConsentRecord>, StoreError> {
    let run = || -> rusqlite::Result<Result<Vec<ConsentRecord>, StoreError>> {
        let mut stmt = conn.prepare(&export_sql(site.is_some()))?;
        let mut rows = match site {
            None => stmt.query(params![from_ms, to_ms, limit])?,
            Some(site) => stmt.query(params![from_ms, to_ms, limit, site])?,
        };
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            match read_row(row, name)? {
                Ok(rec) => out.push(rec),
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(out))
    };
    run().map_err(|e| failed(name, "export", &e))?
}

fn purge(conn: &Connection, older_than_ms: i64, batch: u64, name: &str) -> Result<u64, StoreError> {
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    conn.execute(
        "DELETE FROM consent_records WHERE rowid IN \
         (SELECT rowid FROM consent_records WHERE ts_ms < ?1 LIMIT ?2)",
        params![older_than_ms, batch],
    )
    .map(|n| n as u64)
    .map_err(|e| failed(name, "purge", &e))
}

#[cfg(test)]
mod tests {
    use super::super::tests::sample;
    use super::super::{Backend, ConsentStore, MAX_TS_MS, new_id, now_ms, spawn_purge};
    use super::*;
    use crate::config::{RecordBackend, RecordStore};
    use std::time::Instant;

    async fn open(path: &Path) -> ConsentStore {
        ConsentStore::open(&RecordStore {
            backend: RecordBackend::Sqlite {
                path: path.to_path_buf(),
            },
            ..RecordStore::default()
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn insert_get_export_purge() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("c.db")).await;
        assert_eq!(store.kind(), "sqlite");
        let mut recs: Vec<ConsentRecord> = (0..10).map(|i| sample(1_000 + i / 2 * 10)).collect();
        recs[3].region = None;
        recs[4].signals.clear();
        recs[5].choices.clear();
        for r in &recs {
            store.insert(r).await.unwrap();
        }
        assert_eq!(
            store.get(&recs[3].id).await.unwrap().as_ref(),
            Some(&recs[3])
        );
        assert_eq!(
            store.get(&recs[4].id).await.unwrap().as_ref(),
            Some(&recs[4])
        );
        assert_eq!(store.get(&new_id()).await.unwrap(), None);
        assert_eq!(store.get("not an id").await.unwrap(), None);

        // [1010, 1030): times 1010, 1010, 1020, 1020; by time, then ID.
        let mut expected: Vec<ConsentRecord> = recs[2..6].to_vec();
        expected.sort_by(|a, b| (a.ts_ms, &a.id).cmp(&(b.ts_ms, &b.id)));
        assert_eq!(store.export(1010, 1030, 100).await.unwrap(), expected);
        assert_eq!(store.export(1010, 1030, 3).await.unwrap(), expected[..3]);
        assert!(store.export(1030, 1030, 100).await.unwrap().is_empty());
        assert!(store.export(0, 1000, 100).await.unwrap().is_empty());
        assert_eq!(
            store.export(0, i64::MAX, usize::MAX).await.unwrap().len(),
            10
        );

        // Purged in batches of 3 (so in four): the 9 before 1031, of times 1000, 1010, 1020
        // (two each) and 1030 (three).
        let extra = sample(1030);
        store.insert(&extra).await.unwrap();
        assert_eq!(store.purge_in_batches(1031, 3).await.unwrap(), 9);
        let left = store.export(0, i64::MAX, 100).await.unwrap();
        let mut last = recs[8..].to_vec();
        last.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(left, last);
        assert_eq!(store.purge(0).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn records_survive_a_reopen_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let rec = sample(5_000);
        {
            let store = open(&path).await;
            store.insert(&rec).await.unwrap();
        }
        let store = open(&path).await;
        assert_eq!(store.get(&rec.id).await.unwrap(), Some(rec));
        let other = Connection::open(&path).unwrap();
        let mode: String = other
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let version: i64 = other
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn a_duplicate_id_is_refused_and_the_first_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("c.db")).await;
        let first = sample(1);
        store.insert(&first).await.unwrap();
        let mut second = sample(2);
        second.id = first.id.clone();
        let e = store.insert(&second).await.unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Duplicate, "{e}");
        assert!(e.is_duplicate());
        assert!(e.to_string().contains(&first.id), "{e}");
        assert_eq!(store.get(&first.id).await.unwrap(), Some(first));
    }

    #[tokio::test]
    async fn malformed_records_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("c.db")).await;
        let mut r = sample(1);
        r.id = "ABC".into();
        assert_eq!(
            store.insert(&r).await.unwrap_err().kind(),
            StoreErrorKind::Invalid
        );
        let mut r = sample(MAX_TS_MS + 1);
        assert_eq!(
            store.insert(&r).await.unwrap_err().kind(),
            StoreErrorKind::Invalid
        );
        r.ts_ms = -1;
        assert_eq!(
            store.insert(&r).await.unwrap_err().kind(),
            StoreErrorKind::Invalid
        );
        r.ts_ms = MAX_TS_MS;
        store.insert(&r).await.unwrap();
    }

    /// Concurrent inserts are committed in groups; a duplicate in a group fails only itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_inserts_are_grouped_and_each_answered() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("c.db")).await;
        let taken = sample(7);
        store.insert(&taken).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..300 {
            let store = store.clone();
            let mut rec = sample(i);
            if i == 150 {
                rec.id = taken.id.clone();
            }
            tasks.push(tokio::spawn(async move { (store.insert(&rec).await, rec) }));
        }
        let mut stored = 0;
        for t in tasks {
            let (result, rec) = t.await.unwrap();
            if rec.id == taken.id {
                assert!(result.unwrap_err().is_duplicate());
            } else {
                result.unwrap();
                assert_eq!(store.get(&rec.id).await.unwrap(), Some(rec));
                stored += 1;
            }
        }
        assert_eq!(stored, 299);
        assert_eq!(store.export(0, 1000, 1000).await.unwrap().len(), 300);
    }

    #[tokio::test]
    async fn open_names_the_file_it_cannot_open() {
        let dir = tempfile::tempdir().unwrap();
        // A parent that is a regular file: fails as root too.
        let file = dir.path().join("plain");
        std::fs::write(&file, "not a directory").unwrap();
        let path = file.join("c.db");
        let settings = RecordStore {
            backend: RecordBackend::Sqlite { path: path.clone() },
            ..RecordStore::default()
        };
        let e = ConsentStore::open(&settings).await.unwrap_err();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("not a directory"), "{e}");
        // A parent that does not exist.
        let path = dir.path().join("missing/c.db");
        let e = Sqlite::open(&path).await.err().unwrap();
        assert!(e.contains(&path.display().to_string()), "{e}");
        // A directory.
        let e = Sqlite::open(dir.path()).await.err().unwrap();
        assert!(e.contains("is a directory"), "{e}");
        // A file that is not a database.
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, "x".repeat(4096)).unwrap();
        let e = Sqlite::open(&junk).await.err().unwrap();
        assert!(e.contains(&junk.display().to_string()), "{e}");
        assert!(e.contains("not a database"), "{e}");
        // A database written by a newer version.
        let newer = dir.path().join("newer.db");
        Connection::open(&newer)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let e = Sqlite::open(&newer).await.err().unwrap();
        assert!(e.contains("newer version"), "{e}");
    }

    /// A file of schema 1 (before records carried their site) is migrated: its records stay,
    /// without a site, and new ones carry theirs.
    #[tokio::test]
    async fn a_schema_1_file_gains_the_site_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE consent_records (id TEXT NOT NULL PRIMARY KEY, ts_ms INTEGER NOT NULL,
                   kind TEXT NOT NULL, choices TEXT NOT NULL, texts_version TEXT NOT NULL,
                   policy_version TEXT NOT NULL, region TEXT, signals TEXT NOT NULL,
                   client TEXT NOT NULL, path TEXT NOT NULL);
                 INSERT INTO consent_records VALUES ('0123456789abcdef0123456789abcdef', 5,
                   'accept', '{\"necessary\":true}', 't', 'p', NULL, '[]', '203.0.113.0/24', '/');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        let store = open(&path).await;
        let old = store
            .get("0123456789abcdef0123456789abcdef")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (old.kind, old.site),
            (super::super::ChoiceKind::Accept, None)
        );
        let new = sample(6);
        store.insert(&new).await.unwrap();
        assert_eq!(
            store.get(&new.id).await.unwrap().unwrap().site.as_deref(),
            Some("shop")
        );
        // An export of one site has its records only; the old record, of no site, is in an
        // export of every site.
        let ids = |records: Vec<super::super::ConsentRecord>| -> Vec<String> {
            records.into_iter().map(|r| r.id).collect()
        };
        let of = |site| store.export_site(site, 0, i64::MAX, 100);
        assert_eq!(
            ids(of(Some("shop")).await.unwrap()),
            std::slice::from_ref(&new.id)
        );
        assert!(of(Some("blog")).await.unwrap().is_empty());
        assert_eq!(
            ids(of(None).await.unwrap()),
            ["0123456789abcdef0123456789abcdef".to_string(), new.id]
        );
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // One site's export is planned on the site index, not on a scan of the time range.
        let plan: String = conn
            .query_row(
                &format!("EXPLAIN QUERY PLAN {}", export_sql(true)),
                params![0, 10, 10, "shop"],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("consent_records_site"), "{plan}");
    }

    /// Another process holding the write lock (an operator's `sqlite3` shell in a transaction, a
    /// backup tool): the insert fails after the busy timeout instead of waiting, and the store
    /// works again once the lock is released. Root-proof, unlike file permissions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_insert_blocked_by_another_writer_fails_in_bounded_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let busy = Duration::from_millis(300);
        let store = ConsentStore {
            backend: Backend::Sqlite(Sqlite::open_with(&path, busy).await.unwrap()),
        };
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let rec = sample(1);
        let start = Instant::now();
        let e = store.insert(&rec).await.unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.kind(), StoreErrorKind::Unavailable, "{e}");
        assert!(e.to_string().contains("locked"), "{e}");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert!(took >= busy && took < busy * 2, "{took:?}");
        other.execute_batch("ROLLBACK").unwrap();
        assert_eq!(store.get(&rec.id).await.unwrap(), None);
        store.insert(&rec).await.unwrap();
        assert_eq!(store.get(&rec.id).await.unwrap(), Some(rec));
    }

    /// A row another program wrote badly is reported, not returned half-read.
    #[tokio::test]
    async fn a_corrupt_row_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = open(&path).await;
        let rec = sample(1);
        store.insert(&rec).await.unwrap();
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE consent_records SET choices = '[1]'", [])
            .unwrap();
        let e = store.get(&rec.id).await.unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Corrupt, "{e}");
        assert!(e.to_string().contains(&rec.id), "{e}");
        assert_eq!(
            store.export(0, 10, 10).await.unwrap_err().kind(),
            StoreErrorKind::Corrupt
        );
    }

    #[tokio::test]
    async fn spawn_purge_deletes_expired_records_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("c.db")).await;
        let old = sample(now_ms() - 2 * 86_400_000);
        let recent = sample(now_ms());
        store.insert(&old).await.unwrap();
        store.insert(&recent).await.unwrap();
        let task = spawn_purge(store.clone(), Duration::from_secs(86_400));
        let start = Instant::now();
        while store.get(&old.id).await.unwrap().is_some() {
            assert!(start.elapsed() < Duration::from_secs(5), "not purged");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(store.get(&recent.id).await.unwrap(), Some(recent));
        task.abort();
    }
}
