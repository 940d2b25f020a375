//! The consent record store against real databases, through its public API: a PostgreSQL
//! server that the test starts itself (tests/common/postgres.rs), and a SQLite file. The same
//! checks run on both; then PostgreSQL is made to hang and to go down, and the store must answer
//! `Err` within its deadline, never with the password in the message, and recover.

mod common;

use common::postgres::{PG_PASSWORD, PgServer};
use consent_proxy::audit::consents::{
    ChoiceKind, ConsentRecord, ConsentStore, StoreErrorKind, new_id,
};
use consent_proxy::config::{PostgresUrl, RecordBackend, RecordStore};
use std::process::Command;
use std::time::{Duration, Instant};

fn record(ts_ms: i64, kind: ChoiceKind) -> ConsentRecord {
    ConsentRecord {
        id: new_id(),
        ts_ms,
        kind,
        choices: [
            ("necessary".to_string(), true),
            ("preferences".to_string(), kind != ChoiceKind::Reject),
            ("analytics".to_string(), kind == ChoiceKind::Accept),
        ]
        .into_iter()
        .collect(),
        texts_version: "sha256:2c26b46b68ffc68f".into(),
        policy_version: "2024-05-01".into(),
        region: (kind != ChoiceKind::Settings).then(|| "EU".to_string()),
        signals: if kind == ChoiceKind::Reject {
            vec!["gpc".into()]
        } else {
            vec![]
        },
        client: "2001:db8::/48".into(),
        path: "/kontakt/übersicht".into(),
        site: Some("shop".into()),
    }
}

fn postgres(url: PostgresUrl) -> RecordStore {
    RecordStore {
        backend: RecordBackend::Postgres { url },
        ..RecordStore::default()
    }
}

/// Insert, get, export by range and limit, duplicate, purge: on an empty store.
async fn exercise(store: &ConsentStore) {
    let kinds = ChoiceKind::ALL;
    // Times 100, 100, 200, 200, …, 1000, 1000: two records at each, so that the order by ID
    // among equal times shows.
    let recs: Vec<ConsentRecord> = (0..20)
        .map(|i| record(100 * (1 + i / 2), kinds[i as usize % 4]))
        .collect();
    for r in &recs {
        store.insert(r).await.unwrap();
    }
    for r in &recs {
        assert_eq!(store.get(&r.id).await.unwrap().as_ref(), Some(r));
    }
    assert_eq!(store.get(&new_id()).await.unwrap(), None);

    let sorted = |mut v: Vec<ConsentRecord>| {
        v.sort_by(|a, b| (a.ts_ms, &a.id).cmp(&(b.ts_ms, &b.id)));
        v
    };
    let all = sorted(recs.clone());
    assert_eq!(store.export(0, 10_000, 1000).await.unwrap(), all);
    // [300, 600): the records at 300, 400, 500.
    assert_eq!(store.export(300, 600, 1000).await.unwrap(), all[4..10]);
    assert_eq!(store.export(300, 600, 3).await.unwrap(), all[4..7]);
    assert!(store.export(600, 600, 10).await.unwrap().is_empty());
    assert!(store.export(1001, 5000, 10).await.unwrap().is_empty());

    let mut twin = record(5000, ChoiceKind::Accept);
    twin.id = recs[0].id.clone();
    let e = store.insert(&twin).await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Duplicate, "{e}");
    assert_eq!(
        store.get(&recs[0].id).await.unwrap().as_ref(),
        Some(&recs[0])
    );

    assert_eq!(store.purge(300).await.unwrap(), 4);
    assert_eq!(store.purge(300).await.unwrap(), 0);
    assert_eq!(store.export(0, 10_000, 1000).await.unwrap(), all[4..]);
    assert_eq!(store.get(&recs[0].id).await.unwrap(), None);
    assert_eq!(store.purge(i64::MAX).await.unwrap(), 16);
}

#[tokio::test]
async fn sqlite_store_keeps_and_purges_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = ConsentStore::open(&RecordStore {
        backend: RecordBackend::Sqlite {
            path: dir.path().join("records.db"),
        },
        ..RecordStore::default()
    })
    .await
    .unwrap();
    assert_eq!(store.kind(), "sqlite");
    exercise(&store).await;
}

/// Sends `signal` to each process, by ID.
fn signal(signal: &str, pids: &[i32]) {
    for pid in pids {
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }
}

/// Stopped server processes, continued when dropped (also when the test fails).
struct Paused(Vec<i32>);

impl Drop for Paused {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

/// The server processes serving the proxy's connections.
async fn proxy_backends(url: &str) -> Vec<i32> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let rows = client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'consent-proxy'",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
    rows.iter().map(|r| r.get::<_, i32>(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_records_and_fails_fast_when_the_server_does() {
    let mut pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let url = pg.url();
    let store = ConsentStore::open(&postgres(PostgresUrl::Inline(url.clone())))
        .await
        .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", pg.log()));
    assert_eq!(store.kind(), "postgres");
    assert_eq!(
        store.name(),
        format!("postgres consent@127.0.0.1:{}/postgres", pg.port)
    );
    exercise(&store).await;

    // Another replica, with the URL in a file: the table exists; both see the same records.
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("pg-url");
    std::fs::write(&url_file, format!("{url}\n")).unwrap();
    let replica = ConsentStore::open(&postgres(PostgresUrl::File(url_file)))
        .await
        .unwrap();
    let rec = record(1_714_566_600_000, ChoiceKind::Withdrawal);
    replica.insert(&rec).await.unwrap();
    assert_eq!(store.get(&rec.id).await.unwrap(), Some(rec.clone()));

    // Many tasks at once, on the one shared connection.
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let r = record(2_000_000 + i, ChoiceKind::Accept);
                store.insert(&r).await.map(|()| r)
            })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(replica.get(&r.id).await.unwrap(), Some(r));
    }
    assert_eq!(
        store
            .export(2_000_000, 3_000_000, 1000)
            .await
            .unwrap()
            .len(),
        200
    );

    // A wrong password: refused, and not repeated.
    let wrong = url.replace(PG_PASSWORD, "Wrong-pw-7");
    let e = ConsentStore::open(&postgres(PostgresUrl::Inline(wrong)))
        .await
        .unwrap_err();
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("Wrong-pw-7"), "{e}");

    // A server that hangs (its processes stopped): the insert gives up at its deadline.
    let backends = proxy_backends(&url).await;
    assert!(!backends.is_empty());
    {
        signal("-STOP", &backends);
        let _paused = Paused(backends);
        let start = Instant::now();
        let e = store
            .insert(&record(3_000_000, ChoiceKind::Accept))
            .await
            .unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.kind(), StoreErrorKind::Timeout, "{e}");
        assert!(took < Duration::from_secs(7), "{took:?}: {e}");
        assert!(!e.to_string().contains(PG_PASSWORD), "{e}");
    }
    // Continued: the store opens a new connection and works again.
    let rec = record(3_000_001, ChoiceKind::Reject);
    store.insert(&rec).await.unwrap();
    assert_eq!(store.get(&rec.id).await.unwrap(), Some(rec));

    // The server goes down: every operation fails at once, naming the server, not the password.
    tokio::task::block_in_place(|| pg.stop());
    for attempt in 0..2 {
        let start = Instant::now();
        let e = store
            .insert(&record(4_000_000, ChoiceKind::Accept))
            .await
            .unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.kind(), StoreErrorKind::Unavailable, "{attempt}: {e}");
        assert!(took < Duration::from_secs(3), "{attempt}: {took:?}: {e}");
        let e = e.to_string();
        assert!(e.contains(&format!("127.0.0.1:{}", pg.port)), "{e}");
        assert!(!e.contains(PG_PASSWORD), "{e}");
    }
    assert!(store.get(&new_id()).await.is_err());
    assert!(store.export(0, i64::MAX, 10).await.is_err());
    assert!(store.purge(0).await.is_err());
    let start = Instant::now();
    let e = ConsentStore::open(&postgres(PostgresUrl::Inline(url.clone())))
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3), "{e}");
    assert!(!e.contains(PG_PASSWORD), "{e}");

    // Back up: the store reconnects by itself.
    tokio::task::block_in_place(|| pg.start_again());
    let rec = record(5_000_000, ChoiceKind::Settings);
    store.insert(&rec).await.unwrap();
    assert_eq!(replica.get(&rec.id).await.unwrap(), Some(rec));
}

/// A table made before records carried their site (as an operator may have created it): the
/// store adds the column, keeps the old records without a site, and stores the site of new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_table_without_the_site_column_gains_it() {
    let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let url = pg.url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE consent_records (id TEXT COLLATE \"C\" PRIMARY KEY,
               ts_ms BIGINT NOT NULL, kind TEXT NOT NULL, choices JSONB NOT NULL,
               texts_version TEXT NOT NULL, policy_version TEXT NOT NULL, region TEXT,
               signals TEXT[] NOT NULL, client TEXT NOT NULL, path TEXT NOT NULL);
             INSERT INTO consent_records VALUES ('0123456789abcdef0123456789abcdef', 5, 'accept',
               '{\"necessary\": true}', 't', 'p', NULL, '{}', '203.0.113.0/24', '/');",
        )
        .await
        .unwrap();
    let store = ConsentStore::open(&postgres(PostgresUrl::Inline(url.clone())))
        .await
        .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", pg.log()));
    let old = store
        .get("0123456789abcdef0123456789abcdef")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((old.kind, old.site), (ChoiceKind::Accept, None));
    let new = record(6, ChoiceKind::Reject);
    store.insert(&new).await.unwrap();
    assert_eq!(store.get(&new.id).await.unwrap(), Some(new.clone()));
    // An export of one site has its records only; the old record, of no site, is in an export
    // of every site.
    let of = |site: Option<&'static str>| {
        let store = &store;
        async move {
            let got = store.export_site(site, 0, i64::MAX, 100).await.unwrap();
            got.into_iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(of(Some("shop")).await, std::slice::from_ref(&new.id));
    assert!(of(Some("blog")).await.is_empty());
    assert_eq!(
        of(None).await,
        ["0123456789abcdef0123456789abcdef".to_string(), new.id]
    );
    // Opened again, the column is there: nothing to add.
    ConsentStore::open(&postgres(PostgresUrl::Inline(url)))
        .await
        .unwrap();
    drop(client);
    let _ = driver.await;
}
